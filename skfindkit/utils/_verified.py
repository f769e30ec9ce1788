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
- A write through a shared writable mapping updates the times at a page's
  first write fault only: a mapping made before the verification could
  change the file later without a trace. A verification that may be
  recorded syncs the file first (:func:`sync_before_verifying`), and records
  are kept only on file systems that then write-protect the pages again
  (:data:`WRITEBACK_FILE_SYSTEMS`).
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
import tempfile
import time

from ._persist import new_hash

__all__ = ["SETTLED_NS", "WRITEBACK_FILE_SYSTEMS", "cache_dir", "file_system", "is_recorded",
           "remember", "started", "sync_before_verifying"]

#: a file changed less than this long before its verification started gets no record
SETTLED_NS = 2_000_000_000
#: records kept; past this, the oldest are removed when one is written
MAX_RECORDS = 4096
_KIND = "skfindkit-verified-file"


def cache_dir():
    """The folder of skfindkit's per-user cache (not created here), or None where
    there is none (no absolute home folder).

    ``$SKFINDKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/skfindkit``, else
    ``~/.cache/skfindkit``; a relative folder in either variable is ignored (as
    the XDG specification says: it would depend on the working folder).
    """
    explicit = os.environ.get("SKFINDKIT_CACHE_DIR", "")
    if os.path.isabs(explicit):
        return explicit
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home) or home == os.sep:
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "skfindkit")


#: file systems that write back a page written through a shared mapping and
#: write-protect it again, so that its next write through the mapping updates the
#: file's change time (``page_mkwrite``); on the others (tmpfs, ramfs, FUSE,
#: network file systems...) a write through a mapping opened earlier may leave
#: the times unchanged, so no record is kept there
WRITEBACK_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs",
                                    "overlay"})


def file_system(st):
    """The type of the file system of a file (``os.stat`` result), from
    ``/proc/self/mountinfo``; None where unknown."""
    wanted = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 4 and fields[2] == wanted and "-" in fields[6:]:
                    found = fields[fields.index("-", 6) + 1]  # the last mount wins
    except (OSError, IndexError):
        return None
    return found


def sync_before_verifying(fd, st):
    """Prepare a file for a verification that may be recorded: whether it may be.

    A file can be changed through a shared writable mapping opened before the
    verification without its times changing again (the kernel updates them at
    a page's first write fault only). ``fsync`` writes dirty pages back, and
    file systems in :data:`WRITEBACK_FILE_SYSTEMS` then write-protect them, so
    that any later write through such a mapping faults and updates the change
    time; elsewhere no record is kept.
    """
    if file_system(st) not in WRITEBACK_FILE_SYSTEMS:
        return False
    try:
        os.fsync(fd)
    except OSError:
        return False
    return True


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
    """The folder of records, if it is a private folder of this user (not a link)."""
    cache = cache_dir()
    if cache is None:
        return None
    folder = os.path.join(cache, "verified")
    for path in (cache, folder):  # each checked before anything is made inside it
        if create:  # made here 0700, whatever the umask
            os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
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
        # no link followed, no wait on a FIFO; only a private regular file is read
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(
            os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not (stat.S_ISREG(os.fstat(fd).st_mode) and _private(os.fstat(fd))):
                return False
            record = json.loads(fh.read(4096).decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # none, or not one of ours: ignored
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
        # a new file of a random name (O_EXCL: never a link or FIFO someone left)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".record-", suffix=".tmp")
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
    records = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".json"):
                try:  # a link (dangling or not) is pruned by its own time
                    records.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
                except OSError:
                    pass
    records.sort()
    for _, path in records[:max(0, len(records) - MAX_RECORDS)]:
        try:
            os.unlink(path)
        except OSError:
            pass
