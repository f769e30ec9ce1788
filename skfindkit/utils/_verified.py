"""Which safe files this user's skfindkit has verified completely, and were not changed since.

A mapped load (:func:`skfindkit.io.load` with ``mmap_mode="r"``) that has
verified a file completely -- its checksum, then every check of every
estimator in it -- leaves a small record in this user's cache folder: the
file's device, inode, size, modification and change times (nanoseconds), its
stored checksum, and the skfindkit and format versions that checked it. A
later mapped load of the same, unchanged file (a restarted service, the next
``skfindkit query``, another worker) finds the record and skips the passes
over all the data -- the checksum pass and the value checks (finite, counts
>= 0) -- while every structural check still runs.

Why the record can be trusted, and its limits:

- Any write to the file through the file system changes its change time
  (``ctime``), which no user can set back (``touch`` and ``os.utime`` set the
  modification time only); a file replaced by renaming has another inode. The
  change time can be forged only by changing the system clock (root).
- File systems keep times at a coarse granularity (the kernel's clock tick,
  a few milliseconds): a write in the same tick as the verification could
  leave the times unchanged. So a record is written only for a file whose
  change time is at least :data:`SETTLED_NS` (2 s) older than the start of
  its verification (what git does for its "racily clean" files): a file
  written just before its first load is verified again at its next load.
- Records are files in ``$SKFINDKIT_CACHE_DIR/verified`` (default
  ``$XDG_CACHE_HOME/skfindkit``, else ``~/.cache/skfindkit``), created
  private to the user (mode 0700/0600); a record, or a folder holding it,
  that belongs to another user or that others may write is ignored, and so
  is one that cannot be read or parsed. Whoever can write the user's own
  cache folder can make a load skip the data passes; the structural checks
  still run, and such a person can already change the user's files.
- Bit rot on the disk under an unchanged file is not seen by a record (it
  would be by a full verification): ``verify="always"`` verifies every time.

Nothing here is needed for correctness: without a cache folder (unwritable,
read-only home), loads verify every time.
"""

import json
import os
import stat
import time

from ._persist import new_hash

__all__ = ["SETTLED_NS", "cache_dir", "is_recorded", "remember", "started"]

#: a file changed less than this long before its verification started gets no record
SETTLED_NS = 2_000_000_000
#: records kept; past this, the oldest are removed when one is written
MAX_RECORDS = 4096
_KIND = "skfindkit-verified-file"


def cache_dir():
    """The folder of skfindkit's per-user cache (not created here)."""
    explicit = os.environ.get("SKFINDKIT_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "skfindkit")


def started():
    """The time a verification starts (pass it to :func:`remember`)."""
    return time.time_ns()


def _identity(st):
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _versions():
    from .. import __version__
    from ._persist import FORMAT_VERSION

    return {"skfindkit": __version__, "state_format": FORMAT_VERSION}


def _record_path(folder, st):
    name = new_hash(f"{st.st_dev}:{st.st_ino}".encode()).hexdigest()[:32]
    return os.path.join(folder, f"{name}.json")


def _private(st):
    """Owned by this user, and nobody else may write it."""
    getuid = getattr(os, "getuid", None)
    mine = getuid is None or st.st_uid == getuid()
    return mine and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _folder(create):
    folder = os.path.join(cache_dir(), "verified")
    if create:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    for path in (os.path.dirname(folder), folder):
        st = os.stat(path)
        if not (stat.S_ISDIR(st.st_mode) and _private(st)):
            return None
    return folder


def is_recorded(st, digest, format_version):
    """Whether the file with ``os.fstat`` result ``st``, stored checksum ``digest``
    (bytes) and safe-format version ``format_version`` was verified completely
    since it last changed (a valid record; see the module docstring)."""
    try:
        folder = _folder(create=False)
        if folder is None:
            return False
        path = _record_path(folder, st)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            if not (stat.S_ISREG(os.fstat(fd).st_mode) and _private(os.fstat(fd))):
                return False
            record = json.loads(fh.read(4096).decode("utf-8"))
    except (OSError, ValueError):
        return False
    return record == _record(st, digest, format_version)


def _record(st, digest, format_version):
    return {"kind": _KIND, "file": _identity(st), "checksum": digest.hex(),
            "file_format": format_version, **_versions()}


def remember(path, st, digest, format_version, since):
    """Record that the file ``path`` (``os.fstat`` result ``st``, taken before
    its verification started at ``since``) passed every check; best effort.

    Nothing is written for a file changed less than :data:`SETTLED_NS` before
    ``since``, nor when the cache folder cannot be written. Returns whether a
    record was written.
    """
    if st.st_ctime_ns > since - SETTLED_NS or st.st_mtime_ns > since - SETTLED_NS:
        return False
    try:
        if _identity(os.stat(path)) != _identity(st):  # changed while it was loaded
            return False
        folder = _folder(create=True)
        if folder is None:
            return False
        target = _record_path(folder, st)
        temporary = f"{target}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(json.dumps(_record(st, digest, format_version)).encode("utf-8"))
            os.replace(temporary, target)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        _prune(folder)
    except OSError:
        return False
    return True


def _prune(folder):
    """Keep at most :data:`MAX_RECORDS` records (the most recently written)."""
    with os.scandir(folder) as entries:
        records = [e for e in entries if e.name.endswith(".json")]
    if len(records) <= MAX_RECORDS:
        return
    records.sort(key=lambda e: e.stat().st_mtime_ns)
    for entry in records[:len(records) - MAX_RECORDS]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass
