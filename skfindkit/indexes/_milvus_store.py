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
  restoration as a new collection of the process's default store.
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

from ..utils import import_optional

__all__ = [
    "Collection", "OWNER", "connect", "default_store", "describe", "drop_quietly",
    "is_lite", "lite_restore", "lite_snapshot",
]

_LOCK = threading.Lock()
_CLIENTS = {}
_DEFAULT_STORE = None
_SNAPSHOT_FORMAT = b"skfindkit-milvus-lite-1\n"
OWNER = "skfindkit.owner"  # collection property naming the index that created it


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


def lite_restore(payload, store, name):
    """Restore a :func:`lite_snapshot` as collection ``name`` of the Lite folder ``store``.

    The archive is checked (format tag, plain files with relative names only)
    before anything is written, then moved into place in one rename.
    """
    if not payload.startswith(_SNAPSHOT_FORMAT):
        raise ValueError("not a skfindkit Milvus Lite snapshot")
    with tarfile.open(fileobj=io.BytesIO(payload[len(_SNAPSHOT_FORMAT):]), mode="r") as tar:
        members = tar.getmembers()
        for m in members:
            parts = m.name.split("/")
            if not m.isfile() or m.name.startswith("/") or ".." in parts:
                raise ValueError(f"unexpected member {m.name!r} in a Milvus Lite snapshot")
        if {"schema.json", "manifest.json"} - {m.name for m in members}:
            raise ValueError("Milvus Lite snapshot without schema.json and manifest.json")
        staging = tempfile.mkdtemp(prefix=".skfindkit-restore-", dir=store)
        try:
            for m in members:
                target = os.path.join(staging, *m.name.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as dst:
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
