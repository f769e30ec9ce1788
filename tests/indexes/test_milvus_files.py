"""Saved MilvusIndex files that name endpoints, paths and sizes: the caller decides.

Tampered files are made with every checksum recomputed
(``_corruption.resealed`` + ``skfindkit.io.save``): a file may name a server,
folder or archive member of its choosing. Loading one must never connect to a
server the caller did not name, write outside the process's temporary store,
or write more than the file holds.
"""

import io
import json
import os
import tarfile

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from skfindkit import MilvusIndex  # noqa: E402
from skfindkit import io as skio  # noqa: E402
from skfindkit.indexes import _milvus_store  # noqa: E402
from skfindkit.utils._persist import CorruptIndexError, NativeBlob  # noqa: E402

from .. import _corruption  # noqa: E402

FAR_SERVER = "http://203.0.113.7:19530"  # TEST-NET-3: never reachable
GIB = 1 << 30


@pytest.fixture(scope="module")
def fitted():
    X = _corruption.clustered(60, d=4)
    return MilvusIndex(n_neighbors=3, index_type="FLAT").fit(X), X


def _parts(index):
    """(reference dict, snapshot archive bytes) of a fitted Lite index's native bytes."""
    payload = index.__getstate__()["_index_blob"].payload
    header, _, snapshot = bytes(payload).partition(b"\n")
    assert snapshot.startswith(_milvus_store._SNAPSHOT_FORMAT)
    return json.loads(header), snapshot[len(_milvus_store._SNAPSHOT_FORMAT):]


def _tampered_file(index, tmp_path, ref, archive=None):
    header = json.dumps(ref).encode() + b"\n"
    body = b"" if archive is None else _milvus_store._SNAPSHOT_FORMAT + archive
    state = _corruption.resealed(index.__getstate__(),
                                 _index_blob=NativeBlob("milvus", header + body))
    path = os.path.join(tmp_path, "tampered.skfk")
    _corruption.save_state(MilvusIndex, state, path)
    return path


def _store_bytes():
    """Bytes under the process's temporary Milvus Lite store."""
    root = os.path.dirname(_milvus_store.default_store())
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def test_a_file_naming_a_server_is_refused_without_the_callers_consent(fitted, tmp_path):
    index, X = fitted
    ref, _ = _parts(index)
    path = _tampered_file(index, tmp_path, dict(ref, uri=FAR_SERVER, lite=False))
    with pytest.raises(PermissionError, match="203.0.113.7:19530.*allow_servers"):
        skio.load(path)
    assert FAR_SERVER not in _milvus_store._CLIENTS  # no connection was attempted
    # consent to another server does not cover this one
    with MilvusIndex.allow_servers("http://127.0.0.1:19530"), pytest.raises(PermissionError):
        skio.load(path)


def test_a_named_server_loads_inside_allow_servers(fitted, tmp_path):
    from milvus_lite import server_manager_instance

    X = _corruption.clustered(60, d=4)
    uri = server_manager_instance.start_and_get_uri(_milvus_store.default_store())
    index = MilvusIndex(n_neighbors=3, index_type="FLAT", uri=uri).fit(X)
    path = os.path.join(tmp_path, "server.skfk")
    skio.save(index, path)
    with pytest.raises(PermissionError, match="allow_servers"):
        skio.load(path)
    with MilvusIndex.allow_servers(uri):
        loaded = skio.load(path)
    np.testing.assert_array_equal(loaded.kneighbors(X[:5])[1], index.kneighbors(X[:5])[1])
    with pytest.raises(PermissionError):  # the consent ends with the block
        skio.load(path)


def _sparse_member(name, real_size):
    """A GNU sparse tar member: 1 stored byte, ``real_size`` bytes once extracted."""
    info = tarfile.TarInfo(name)
    info.size = 512
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    block[156:157] = tarfile.GNUTYPE_SPARSE
    block[124:136] = b"%011o\0" % 512  # stored bytes
    block[386:398] = b"%011o\0" % (real_size - 1)  # one data extent at the end
    block[398:410] = b"%011o\0" % 1
    block[483:495] = b"%011o\0" % real_size
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + b"\1" + bytes(511)


def _archive(members, extra=b""):
    """A tar archive of ``members`` ({name: bytes}), then ``extra`` headers and data."""
    out = b""
    for name, data in members.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out += info.tobuf(format=tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)
    return out + extra + bytes(1024)


def _members(archive):
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_an_archive_member_declaring_50_gib_is_refused_before_any_write(fitted, tmp_path):
    index, _ = fitted
    ref, archive = _parts(index)
    members = _members(archive)
    bomb = _archive(members, _sparse_member("partitions/_default/data/bomb.parquet", 50 * GIB))
    # the restore itself refuses it too, whatever checked it before
    before = _store_bytes()
    with pytest.raises(ValueError, match="bomb.parquet"):
        _milvus_store.lite_restore(_milvus_store._SNAPSHOT_FORMAT + bomb,
                                   _milvus_store.default_store(), "skfindkit_never")
    path = _tampered_file(index, tmp_path, ref, bomb)
    assert os.path.getsize(path) < 64 << 10
    with pytest.raises(CorruptIndexError, match="bomb.parquet"):
        skio.load(path)
    assert _store_bytes() - before < 1 << 20  # nothing large was written


def _with_header(archive, name, fields):
    """``archive`` with ``name``'s header edited (its header checksum recomputed)."""
    data = bytearray(archive)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        member = tar.getmember(name)
    start = member.offset
    for offset, value in fields.items():
        data[start + offset:start + offset + len(value)] = value
    data[start + 148:start + 156] = b" " * 8
    data[start + 148:start + 156] = b"%06o\0 " % sum(data[start:start + 512])
    return bytes(data)


@pytest.mark.parametrize("case", [
    "oversized", "symlink", "device", "absolute", "dotdot", "compressed",
    "manifest-escapes", "manifest-wal", "schema-dim",
])
def test_malformed_snapshots_are_refused_before_any_write(fitted, tmp_path, case):
    index, X = fitted
    ref, archive = _parts(index)
    members = _members(archive)
    data_name = next(n for n in members if n.endswith(".parquet"))
    manifest = json.loads(members["manifest.json"])
    schema = json.loads(members["schema.json"])
    if case == "oversized":  # 50 GiB declared, the archive is a few KiB
        bad = _with_header(archive, data_name, {124: b"%011o\0" % (50 * GIB)})
    elif case == "symlink":
        bad = _with_header(archive, data_name, {156: tarfile.SYMTYPE, 157: b"/etc/passwd\0"})
    elif case == "device":
        bad = _with_header(archive, data_name, {156: tarfile.CHRTYPE})
    elif case in ("absolute", "dotdot"):
        name = "/tmp/evil.parquet" if case == "absolute" else "partitions/../../evil.parquet"
        bad = _archive({**members, name: b"x"})
    elif case == "compressed":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        bad = buf.getvalue()
    elif case == "manifest-escapes":
        manifest["partitions"]["_default"]["data_files"].append("../../../../outside.parquet")
        bad = _archive({**members, "manifest.json": json.dumps(manifest).encode()})
    elif case == "manifest-wal":
        manifest["active_wal_number"] = 7
        bad = _archive({**members, "manifest.json": json.dumps(manifest).encode()})
    else:
        next(f for f in schema["fields"] if f["dim"])["dim"] = X.shape[1] + 1
        bad = _archive({**members, "schema.json": json.dumps(schema).encode()})
    assert _archive(members) != bad
    before = _store_bytes()
    with pytest.raises(CorruptIndexError, match="Milvus Lite snapshot"):
        skio.load(_tampered_file(index, tmp_path, ref, bad))
    assert _store_bytes() - before < 1 << 20


def test_an_untampered_rebuilt_archive_still_loads(fitted, tmp_path):
    # the helpers above rebuild archives that the checks accept when unaltered
    index, X = fitted
    ref, archive = _parts(index)
    loaded = skio.load(_tampered_file(index, tmp_path, ref, _archive(_members(archive))))
    np.testing.assert_array_equal(loaded.kneighbors(X[:5])[1], index.kneighbors(X[:5])[1])
    assert loaded.uri_ == _milvus_store.default_store()  # not the folder the file names
