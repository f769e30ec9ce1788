"""Connections to Milvus (Lite or server) and Lite collection snapshots.

The glue :class:`~skfindkit.MilvusIndex` needs around pymilvus, kept apart
from the estimator:

- one :class:`pymilvus.MilvusClient` per URI and process (a Milvus Lite
  ``.db`` folder is served in-process by milvus-lite's server manager, so
  every index of a process shares one embedded server per folder; the
  default store is a temporary folder removed at exit);
- connection failures turned into errors that say what is wrong with the
  URI (unreachable, not a Lite folder, locked by another process, corrupt)
  within the ``timeout``;
- snapshots of one Lite collection as bytes (what pickling stores) and their
  restoration as a new collection of the process's default store, after
  checking the archive (plain files with relative names, sizes within the
  archive) and the manifest (files of the archive only, no path outside it);
- the servers a loaded file may connect to: none unless the caller names
  them (:func:`allowed_servers`).
"""

import atexit
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections import Counter
from contextlib import contextmanager

from ..utils import import_optional

__all__ = [
    "Collection", "OWNER", "UntrustedEndpointError", "allowed_servers", "check_server_allowed",
    "check_snapshot", "connect", "default_store", "describe", "drop_quietly", "is_lite",
    "lite_restore", "lite_snapshot",
]

_LOCK = threading.Lock()
_CLIENTS = {}
_DEFAULT_STORE = None
_SNAPSHOT_FORMAT = b"skfindkit-milvus-lite-1\n"
OWNER = "skfindkit.owner"  # collection property naming the index that created it
_ALLOWED = Counter()  # server URIs a loaded file may connect to (see allowed_servers)
_MAX_MEMBERS = 100_000  # files in one snapshot archive
_PLAIN_FILES = (tarfile.REGTYPE, tarfile.AREGTYPE)


class UntrustedEndpointError(PermissionError):
    """A loaded file references a server the caller did not allow."""


def _server_key(uri):
    return str(uri).rstrip("/")


@contextmanager
def allowed_servers(*uris):
    """Let files loaded inside the ``with`` block reference collections at ``uris``."""
    keys = [_server_key(u) for u in uris]
    with _LOCK:
        _ALLOWED.update(keys)
    try:
        yield
    finally:
        with _LOCK:
            _ALLOWED.subtract(keys)
            for key in keys:
                if _ALLOWED[key] <= 0:
                    del _ALLOWED[key]


def check_server_allowed(uri, owner):
    """Refuse a server ``uri`` read from a file unless the caller allowed it."""
    with _LOCK:
        allowed = _ALLOWED[_server_key(uri)] > 0 if isinstance(uri, str) else False
    if not allowed:
        raise UntrustedEndpointError(
            f"{owner}: the file references a collection on the Milvus server at "
            f"uri={uri!r}; a loaded index connects to no server the caller did not "
            f"name. If you trust this file and that server, load it inside "
            f"`with MilvusIndex.allow_servers({uri!r}):`."
        )


class Collection:
    """Where a fitted index lives: a URI, a collection name, an owner token."""

    def __init__(self, uri, name, token, timeout, lite):
        self.uri, self.name, self.token, self.timeout, self.lite = uri, name, token, timeout, lite

    @property
    def client(self):
        return connect(self.uri, self.timeout)


def drop_quietly(uri, name, timeout):
    """Drop a collection, ignoring failures (a finalizer: the process may be exiting)."""
    try:
        connect(uri, timeout).drop_collection(name, timeout=timeout)
    except Exception:  # noqa: BLE001
        pass


def describe(info):
    """One line about a collection (fields, dimension, owner) for error messages."""
    fields = {f["name"]: f for f in info.get("fields", [])}
    dims = [f.get("params", {}).get("dim") for f in fields.values() if f.get("params", {}).get("dim")]
    owner = info.get("properties", {}).get(OWNER)
    made_by = f"created by another MilvusIndex (owner {owner})" if owner else "not created by skfindkit"
    return f"fields {sorted(fields)}, dimension {dims[0] if dims else 'unknown'}, {made_by}"


def _pymilvus():
    return import_optional("pymilvus", "milvus")


def is_lite(uri):
    """Whether ``uri`` names a Milvus Lite folder (pymilvus's rule: ends in ``.db``)."""
    return str(uri).endswith(".db")


def default_store():
    """The process's Milvus Lite folder (a temporary ``.db``, removed at exit)."""
    global _DEFAULT_STORE
    with _LOCK:
        if _DEFAULT_STORE is None:
            tmp = tempfile.mkdtemp(prefix="skfindkit-milvus-")
            _DEFAULT_STORE = os.path.join(tmp, "store.db")
            atexit.register(_remove_store, tmp, _DEFAULT_STORE)
        return _DEFAULT_STORE


def _remove_store(tmp, path):
    try:  # stop the embedded server before its folder goes
        _lite_manager().release_server(path)
    except Exception:  # noqa: BLE001 - best effort at exit
        pass
    shutil.rmtree(tmp, ignore_errors=True)


def connect(uri, timeout):
    """The process's client for ``uri`` (created on first use).

    Raises
    ------
    ConnectionError
        The server does not answer within ``timeout`` seconds, or the Lite
        folder cannot be opened (the message says why: not a folder, locked
        by another process, corrupt).
    """
    key = os.path.abspath(uri) if is_lite(uri) else uri
    with _LOCK:
        client = _CLIENTS.get(key)
    if client is not None:
        return client
    pymilvus = _pymilvus()
    try:
        client = pymilvus.MilvusClient(uri=key, timeout=timeout)
        client.list_collections(timeout=timeout)  # a corrupt Lite folder fails here
    except pymilvus.exceptions.MilvusException as exc:
        message = _why_not(uri, key, timeout, exc)
        if is_lite(uri):  # stop the embedded server a corrupt folder started
            _lite_manager().release_server(key)
        raise ConnectionError(message) from exc
    with _LOCK:
        return _CLIENTS.setdefault(key, client)


def _why_not(uri, key, timeout, exc):
    if not is_lite(uri):
        return (
            f"MilvusIndex: cannot reach the Milvus server at uri={uri!r} within "
            f"timeout={timeout} s ({exc}). Check the address and that the server "
            "is running, or leave uri=None for an embedded Milvus Lite store."
        )
    if os.path.exists(key) and not os.path.isdir(key):
        reason = "it is a file, not a Milvus Lite data folder"
    elif key not in getattr(_lite_manager(), "_servers", {}) and _locked_elsewhere(key):
        reason = "another process holds its lock (close that process or use another uri)"
    else:
        reason = f"it is not a readable Milvus Lite folder: {exc}"
    return f"MilvusIndex: cannot open the Milvus Lite store uri={uri!r}: {reason}."


def _locked_elsewhere(path):
    """Whether another process holds the Lite folder's ``LOCK`` file."""
    import fcntl

    lock = os.path.join(path, "LOCK")
    if not os.path.exists(lock):
        return False
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _lite_manager():
    """milvus-lite's registry of the embedded servers of this process."""
    return import_optional("milvus_lite", "milvus").server_manager_instance


def _lite_db(path):
    """The in-process ``MilvusLite`` database serving the folder ``path``."""
    entry = getattr(_lite_manager(), "_servers", {}).get(os.path.abspath(path))
    if entry is None:
        raise RuntimeError(
            f"MilvusIndex: no embedded Milvus Lite server serves {path!r} in this "
            "process; snapshots need milvus-lite>=3.2 (its in-process server manager)."
        )
    return entry[1]


def _collection_dir(store, name):
    return os.path.join(store, "collections", name)


def lite_snapshot(store, name):
    """Bytes of a consistent snapshot of collection ``name`` of a Lite folder.

    Milvus Lite flushes the collection, waits for its background index builds
    and pins the files of one manifest version; those files (schema,
    manifest, data, deletions, index sidecars) are archived as a tar.
    """
    db = _lite_db(store)
    snap_name = f"skfindkit_{uuid.uuid4().hex}"
    meta = db.create_snapshot(name, snap_name)
    try:
        col_dir = _collection_dir(store, name)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(os.path.join(col_dir, meta["schema_file"]), "schema.json")
            with open(os.path.join(col_dir, meta["manifest_file"]), "rb") as fh:
                manifest = json.load(fh)
            manifest["active_wal_number"] = None  # the WAL is empty after the flush
            _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
            for key in ("data_files", "delta_files", "index_files"):
                for partition, rels in meta.get(key, {}).items():
                    for rel in rels:
                        arc = f"partitions/{partition}/{rel}"
                        tar.add(os.path.join(col_dir, arc), arc)
    finally:
        db.drop_snapshot(name, snap_name)
    return _SNAPSHOT_FORMAT + buf.getvalue()


def _add_bytes(tar, arcname, data):
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _safe_relative(name):
    """Whether ``name`` is a relative path of plain components (no ``..``, no absolute)."""
    parts = name.split("/") if isinstance(name, str) else [""]
    return not name.startswith("/") and "\\" not in name and "\0" not in name and all(
        p not in ("", ".", "..") for p in parts)


def _open_archive(payload):
    """The uncompressed tar archive of a snapshot (a compressed one is refused)."""
    if not bytes(payload[:len(_SNAPSHOT_FORMAT)]) == _SNAPSHOT_FORMAT:
        raise ValueError("not a skfindkit Milvus Lite snapshot")
    archive = bytes(payload[len(_SNAPSHOT_FORMAT):])
    try:
        return tarfile.open(fileobj=io.BytesIO(archive), mode="r:"), len(archive)
    except tarfile.TarError as exc:
        raise ValueError(f"the Milvus Lite snapshot is not a tar archive ({exc})") from None


def _checked_members(tar, size):
    """The archive's members: plain files with safe names, their bytes inside the archive."""
    members, total = [], 0
    try:
        for m in tar:
            members.append(m)
            if len(members) > _MAX_MEMBERS:
                raise ValueError(f"the Milvus Lite snapshot has more than {_MAX_MEMBERS} files")
            if m.type not in _PLAIN_FILES or m.issparse() or not _safe_relative(m.name):
                raise ValueError(
                    f"unexpected member {m.name!r} in a Milvus Lite snapshot (only plain "
                    "files with relative names: no links, devices, sparse files, '..')")
            total += m.size
            if m.size < 0 or m.offset_data + m.size > size or total > size:
                raise ValueError(
                    f"member {m.name!r} of a Milvus Lite snapshot declares {m.size} bytes, "
                    f"more than the {size}-byte archive holds")
    except tarfile.TarError as exc:
        raise ValueError(f"the Milvus Lite snapshot is malformed ({exc})") from None
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError("a Milvus Lite snapshot names a file twice")
    if {"schema.json", "manifest.json"} - set(names):
        raise ValueError("Milvus Lite snapshot without schema.json and manifest.json")
    return members


def _read_json(tar, name):
    try:
        with tar.extractfile(name) as fh:
            value = json.loads(fh.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name} of a Milvus Lite snapshot is malformed ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} of a Milvus Lite snapshot is not a JSON object")
    return value


def _check_manifest(manifest, names):
    """Every file the manifest names is a file of the archive (so inside the collection)."""
    if manifest.get("active_wal_number") is not None:
        raise ValueError("a Milvus Lite snapshot's manifest names a write-ahead log")
    partitions = manifest.get("partitions")
    if not isinstance(partitions, dict):
        raise ValueError("a Milvus Lite snapshot's manifest has no partitions")
    for partition, files in partitions.items():
        if not _safe_relative(partition) or "/" in partition or not isinstance(files, dict):
            raise ValueError(f"a Milvus Lite snapshot names the partition {partition!r}")
        for key, rels in files.items():
            if key not in ("data_files", "delta_files") or not isinstance(rels, list):
                raise ValueError(f"a Milvus Lite snapshot's manifest has {key!r}")
            for rel in rels:
                if not (isinstance(rel, str) and _safe_relative(rel)
                        and f"partitions/{partition}/{rel}" in names):
                    raise ValueError(
                        f"a Milvus Lite snapshot's manifest names {rel!r}, not a file of "
                        "the snapshot")


def check_snapshot(payload, dim):
    """Check a :func:`lite_snapshot` before anything is written or loaded.

    The archive must be uncompressed, hold plain files with relative names
    whose declared sizes fit in it, a manifest naming files of the archive
    only, and a schema of ``dim``-dimensional vectors.

    Raises
    ------
    ValueError
        Naming what is wrong.
    """
    tar, size = _open_archive(payload)
    with tar:
        members = _checked_members(tar, size)
        names = {m.name for m in members}
        _check_manifest(_read_json(tar, "manifest.json"), names)
        fields = _read_json(tar, "schema.json").get("fields")
        dims = [f.get("dim") for f in fields if isinstance(f, dict) and f.get("dim") is not None
                ] if isinstance(fields, list) else []
        if dims != [dim]:
            raise ValueError(
                f"the Milvus Lite snapshot holds vectors of dimension {dims}, not [{dim}]")


def lite_restore(payload, store, name):
    """Restore a :func:`lite_snapshot` as collection ``name`` of the Lite folder ``store``.

    The archive is checked (:func:`check_snapshot`'s archive and manifest
    checks) before anything is written, then moved into place in one rename.
    """
    tar, size = _open_archive(payload)
    with tar:
        members = _checked_members(tar, size)
        _check_manifest(_read_json(tar, "manifest.json"), {m.name for m in members})
        staging = tempfile.mkdtemp(prefix=".skfindkit-restore-", dir=store)
        try:
            for m in members:
                target = os.path.join(staging, *m.name.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(m) as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst)
            schema_path = os.path.join(staging, "schema.json")
            with open(schema_path) as fh:
                schema = json.load(fh)
            schema["collection_name"] = name
            with open(schema_path, "w") as fh:
                json.dump(schema, fh)
            os.makedirs(os.path.join(staging, "wal"), exist_ok=True)
            os.makedirs(os.path.join(store, "collections"), exist_ok=True)
            os.replace(staging, _collection_dir(store, name))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
