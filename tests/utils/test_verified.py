"""Records of complete verifications (skfindkit/utils/_verified.py): a mapped load of an
unchanged, already verified file skips the passes over all its data; any change, a
replaced file or a record others could have written means a full verification again."""

import json
import mmap
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from skfindkit import ExactIndex, io
from skfindkit.io import CorruptFileError
from skfindkit.utils import _safe_file, _verified
from skfindkit.indexes import _pickling


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp_path(tmp_path):
    """A temporary folder on a file system where skfindkit keeps records (where the
    test machine's temporary folder is a tmpfs: one in the checkout)."""
    if _verified.file_system(os.stat(tmp_path)) in _verified.WRITEBACK_FILE_SYSTEMS:
        yield tmp_path
        return
    if _verified.file_system(os.stat(ROOT)) not in _verified.WRITEBACK_FILE_SYSTEMS:
        pytest.skip(f"neither {tmp_path} nor {ROOT} is on a file system where skfindkit "
                    f"keeps records ({sorted(_verified.WRITEBACK_FILE_SYSTEMS)})")
    folder = Path(tempfile.mkdtemp(dir=ROOT, prefix=".test-verified-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, and files counted as settled at once (the 2 s rule is
    tested on its own below)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SKFINDKIT_CACHE_DIR", str(folder))
    monkeypatch.setattr(_verified, "SETTLED_NS", 0)
    return folder


@pytest.fixture
def passes(monkeypatch):
    """Counts of the passes over all the data: the mapped checksum and the value scans."""
    counts = {"hash": 0, "scan": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)
        return wrapper

    def scanned(values, check):  # counts the scans that check values
        seen = []

        def counted_check(piece):
            seen.append(1)
            return check(piece)

        result = original_scan(values, counted_check)
        counts["scan"] += bool(seen)
        return result

    original_scan = _pickling.scan
    monkeypatch.setattr(_safe_file, "hash_mapped", counted("hash", _safe_file.hash_mapped))
    monkeypatch.setattr(_pickling, "scan", scanned)
    return counts


def _saved(tmp_path, name="i.skfk", seed=0):
    X = np.random.default_rng(seed).normal(size=(500, 8)).astype(np.float32)
    path = tmp_path / name
    io.save(ExactIndex(n_neighbors=3).fit(X), path)
    return path, X


def _records(cache):
    folder = cache / "verified"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def test_an_unchanged_verified_file_is_mapped_without_passing_over_its_data(
        tmp_path, cache, passes):
    path, X = _saved(tmp_path)
    expected = io.load(path).kneighbors(X[:20])
    assert passes == {"hash": 0, "scan": 1} and not _records(cache)  # a normal load: no record

    first = io.load(path, mmap_mode="r")
    assert passes["hash"] == 1 and passes["scan"] == 2
    (record,) = _records(cache)
    assert oct(record.stat().st_mode & 0o777) == oct(0o600)

    second = io.load(path, mmap_mode="r")
    assert passes["hash"] == 1 and passes["scan"] == 2  # neither pass ran again
    for index in (first, second):
        np.testing.assert_array_equal(index.kneighbors(X[:20])[1], expected[1])
        np.testing.assert_array_equal(index.kneighbors(X[:20])[0], expected[0])


def _flip_in_place_keeping_mtime(path):
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(before.st_size // 2)
        byte = fh.read(1)
        fh.seek(before.st_size // 2)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime cannot be set back


def _rewrite_same_bytes(path):
    data = path.read_bytes()
    with open(path, "r+b") as fh:
        fh.write(data)


def _grow_and_cut_back(path):
    size = os.path.getsize(path)
    with open(path, "ab") as fh:
        fh.write(b"x")
    os.truncate(path, size)


@pytest.mark.parametrize("change", [_flip_in_place_keeping_mtime, _rewrite_same_bytes,
                                    _grow_and_cut_back, lambda p: os.chmod(p, 0o644)])
def test_any_change_to_a_recorded_file_means_a_full_verification(tmp_path, cache, passes,
                                                                  change):
    path, X = _saved(tmp_path)
    io.load(path, mmap_mode="r")
    assert _records(cache) and passes["hash"] == 1
    change(path)
    if change is _flip_in_place_keeping_mtime:
        with pytest.raises(CorruptFileError, match="failed its"):
            io.load(path, mmap_mode="r")
    else:
        io.load(path, mmap_mode="r").kneighbors(X[:3])
    assert passes["hash"] == 2


def test_a_file_replaced_by_another_is_verified_again(tmp_path, cache, passes):
    path, _ = _saved(tmp_path)
    io.load(path, mmap_mode="r")
    other, X = _saved(tmp_path, "other.skfk", seed=1)
    os.replace(other, path)  # another inode
    index = io.load(path, mmap_mode="r")
    assert passes["hash"] == 2
    assert index.kneighbors(X[:1], 1, return_distance=False)[0, 0] == 0


def test_a_file_changed_just_before_its_verification_gets_no_record(tmp_path, monkeypatch,
                                                                   passes):
    """File times are coarse (a clock tick): a write in the same tick as the
    verification could leave them unchanged, so a fresh file is not recorded."""
    monkeypatch.setenv("SKFINDKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert _verified.SETTLED_NS == 2_000_000_000
    path, _ = _saved(tmp_path)
    io.load(path, mmap_mode="r")
    io.load(path, mmap_mode="r")
    assert passes["hash"] == 2 and not _records(tmp_path / "cache")


def _recorded_file(tmp_path, cache):
    path, X = _saved(tmp_path)
    io.load(path, mmap_mode="r")
    (record,) = _records(cache)
    return path, record


@pytest.mark.parametrize("spoil", [
    lambda r, c: os.chmod(r, 0o622),  # others may write it
    lambda r, c: os.chmod(c / "verified", 0o777),  # others may write the folder
    lambda r, c: os.chmod(c, 0o770),  # or the cache folder above it
    lambda r, c: r.write_text("{not json"),
    lambda r, c: r.write_bytes(b"\xff\xfe" * 100),
    lambda r, c: r.write_text(json.dumps({**json.loads(r.read_text()), "skfindkit": "0.0.1"})),
    lambda r, c: r.write_text(json.dumps({**json.loads(r.read_text()),
                                          "checksum": "00" * 16})),
    lambda r, c: r.write_text(json.dumps({**json.loads(r.read_text()), "file": [0, 0, 0, 0, 0]})),
    lambda r, c: (r.unlink(), r.mkdir()),
])
def test_a_record_that_is_not_ours_or_not_this_files_is_ignored(tmp_path, cache, passes,
                                                                spoil):
    path, record = _recorded_file(tmp_path, cache)
    spoil(record, cache)
    io.load(path, mmap_mode="r")
    assert passes["hash"] == 2


def test_a_record_that_is_a_link_is_ignored(tmp_path, cache, passes):
    path, record = _recorded_file(tmp_path, cache)
    elsewhere = tmp_path / "elsewhere.json"
    os.replace(record, elsewhere)
    os.symlink(elsewhere, record)
    io.load(path, mmap_mode="r")
    assert passes["hash"] == 2


def test_a_record_copied_to_another_file_name_does_not_vouch_for_it(tmp_path, cache, passes):
    """The record names the file it vouches for by device and inode (its file name
    too): a second file, even with the same bytes, is verified on its own."""
    path, record = _recorded_file(tmp_path, cache)
    twin = tmp_path / "twin.skfk"
    twin.write_bytes(path.read_bytes())
    for other in _records(cache):
        other.unlink()
    record_of_twin = _verified._record_path(str(cache / "verified"), os.stat(twin))
    os.makedirs(os.path.dirname(record_of_twin), exist_ok=True)
    with open(record_of_twin, "w") as fh:  # the first file's record, under the twin's name
        fh.write(json.dumps(_verified._record(os.stat(path), path.read_bytes()[-16:], 2)))
    os.chmod(record_of_twin, 0o600)
    io.load(twin, mmap_mode="r")
    assert passes["hash"] == 2


def test_verify_always_passes_over_the_data_every_time_and_records_nothing(
        tmp_path, cache, passes):
    path, _ = _saved(tmp_path)
    for _ in range(2):
        io.load(path, mmap_mode="r", verify="always")
    assert passes["hash"] == 2 and not _records(cache)
    io.load(path, mmap_mode="r")
    io.load(path, mmap_mode="r", verify="always")  # a record exists: still a full pass
    assert passes["hash"] == 4


@pytest.mark.parametrize("verify", ["sometimes", None, True, ""])
def test_verify_other_than_once_or_always_is_refused(tmp_path, verify):
    path, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match="verify"):
        io.load(path, mmap_mode="r", verify=verify)


def test_a_cache_folder_that_cannot_be_made_leaves_loads_verifying(tmp_path, monkeypatch,
                                                                 passes):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SKFINDKIT_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(_verified, "SETTLED_NS", 0)
    path, X = _saved(tmp_path)
    for _ in range(2):
        io.load(path, mmap_mode="r").kneighbors(X[:2])
    assert passes["hash"] == 2


def test_a_file_refused_at_load_is_never_recorded(tmp_path, cache):
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    index = ExactIndex().fit(X)
    index._fit_X[3, 1] = np.nan  # sealed as it is: the file's checksums all match
    path = tmp_path / "nan.skfk"
    io.save(index, path)
    for _ in range(2):
        with pytest.raises(io.CorruptIndexError, match="not finite"):
            io.load(path, mmap_mode="r")
    assert not _records(cache)


def test_records_are_pruned_to_the_most_recent(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(_verified, "MAX_RECORDS", 3)
    path, _ = _saved(tmp_path, "first.skfk")
    io.load(path, mmap_mode="r")
    os.symlink(tmp_path / "nowhere", cache / "verified" / "dangling.json")
    for i in range(5):
        path, _ = _saved(tmp_path, f"f{i}.skfk", seed=i)
        io.load(path, mmap_mode="r")
    assert len(list((cache / "verified").iterdir())) == 3


def test_the_serve_command_passes_verify_on(tmp_path, cache, passes):
    from skfindkit.cli import build_parser

    args = build_parser().parse_args(["serve", "x.skfk", "--mmap", "--verify", "always"])
    assert args.verify == "always"
    args = build_parser().parse_args(["serve", "x.skfk", "--mmap"])
    assert args.verify == "once"


def test_a_write_through_a_mapping_opened_before_the_verification_is_caught(
        tmp_path, cache, passes, monkeypatch):
    """The kernel updates a file's times at a page's first write fault only: a
    mapping made writable before the verification could change the file later
    without a trace, unless the pages were written back (and write-protected)
    before the file was hashed."""
    monkeypatch.setattr(_verified, "SETTLED_NS", 50_000_000)
    path, X = _saved(tmp_path)
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mapping:
        middle = os.path.getsize(path) // 2
        mapping[middle] = mapping[middle]  # the page is dirty and writable now
        time.sleep(0.1)  # the file settles (the record's rule, shortened here)
        io.load(path, mmap_mode="r")  # verified in full, recorded
        assert _records(cache)
        mapping[middle] = mapping[middle] ^ 0x01  # through the same mapping
        with pytest.raises(CorruptFileError, match="failed its"):
            io.load(path, mmap_mode="r")
    assert passes["hash"] == 2


def test_no_record_on_a_file_system_without_writeback(tmp_path, cache, passes):
    shm = Path("/dev/shm")
    if not shm.is_dir() or _verified.file_system(os.stat(shm)) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm to try")
    folder = Path(tempfile.mkdtemp(dir=shm))
    try:
        path, X = _saved(folder)
        for _ in range(2):
            io.load(path, mmap_mode="r").kneighbors(X[:2])
    finally:
        shutil.rmtree(folder)
    assert passes["hash"] == 2 and not _records(cache)


def test_a_fifo_in_place_of_a_record_is_ignored_without_waiting(tmp_path, cache, passes):
    path, record = _recorded_file(tmp_path, cache)
    record.unlink()
    os.mkfifo(record, 0o600)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (io.load(path, mmap_mode="r"), done.set()),
                              daemon=True)
    worker.start()
    worker.join(30)
    if not done.is_set():  # let the blocked open return before failing
        with open(record, "wb", opener=lambda p, f: os.open(p, f | os.O_NONBLOCK)):
            pass
    assert done.is_set(), "a mapped load waited on a FIFO in the cache folder"
    assert passes["hash"] == 2


@pytest.mark.parametrize("text", ["[" * 4000, "[" * 2000 + "]" * 2000, '{"a":' * 3000])
def test_a_deeply_nested_record_is_ignored(tmp_path, cache, passes, text):
    path, record = _recorded_file(tmp_path, cache)
    record.write_text(text)
    io.load(path, mmap_mode="r")
    assert passes["hash"] == 2


def test_a_records_folder_that_is_a_link_is_neither_read_nor_written(tmp_path, cache,
                                                                    passes):
    path, record = _recorded_file(tmp_path, cache)
    elsewhere = tmp_path / "elsewhere"
    os.replace(cache / "verified", elsewhere)
    os.symlink(elsewhere, cache / "verified")
    other, _ = _saved(tmp_path, "other.skfk", seed=2)
    for _ in range(2):
        io.load(path, mmap_mode="r")
        io.load(other, mmap_mode="r")
    assert passes["hash"] == 5  # the first load, then every one
    assert len(list(elsewhere.iterdir())) == 1  # nothing written through the link


def test_the_cache_folder_follows_the_xdg_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("SKFINDKIT_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _verified.cache_dir() == str(tmp_path / "xdg" / "skfindkit")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")  # ignored, as the spec says
    assert _verified.cache_dir() == str(tmp_path / ".cache" / "skfindkit")
    monkeypatch.setenv("SKFINDKIT_CACHE_DIR", "relative/cache")  # the same rule
    assert _verified.cache_dir() == str(tmp_path / ".cache" / "skfindkit")
    monkeypatch.setenv("SKFINDKIT_CACHE_DIR", str(tmp_path / "mine"))
    assert _verified.cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("SKFINDKIT_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    for home in ("", "relative", "/"):
        monkeypatch.setenv("HOME", home)
        assert _verified.cache_dir() is None


def test_without_a_home_nothing_is_written_anywhere(tmp_path, monkeypatch, passes):
    monkeypatch.delenv("SKFINDKIT_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "")
    monkeypatch.setattr(_verified, "SETTLED_NS", 0)
    path, _ = _saved(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for _ in range(2):
        io.load(path, mmap_mode="r")
    assert passes["hash"] == 2 and sorted(p.name for p in tmp_path.iterdir()) == before


def test_records_are_kept_private_whatever_the_umask(tmp_path, cache, passes):
    previous = os.umask(0)
    try:
        path, _ = _recorded_file(tmp_path, cache)
        io.load(path, mmap_mode="r")
    finally:
        os.umask(previous)
    assert passes["hash"] == 1
    for folder in (cache, cache / "verified"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_a_cache_folder_that_is_a_link_is_not_used(tmp_path, monkeypatch, passes):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    os.symlink(outside, tmp_path / "cache-link")
    monkeypatch.setenv("SKFINDKIT_CACHE_DIR", str(tmp_path / "cache-link"))
    monkeypatch.setattr(_verified, "SETTLED_NS", 0)
    path, _ = _saved(tmp_path)
    for _ in range(2):
        io.load(path, mmap_mode="r")
    assert passes["hash"] == 2 and not list(outside.iterdir())

