"""The index's readers/writer lock, driven by events rather than sleeps.

Each test waits for the lock's own state (a writer registered as waiting)
before it asserts, so a slow machine delays the test but cannot change its
outcome.
"""

import threading
import time

import pytest

from skfindkit.indexes._lock import ReadWriteLock


def _wait_until(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        threading.Event().wait(0.001)


def _waiting_writers(lock):
    with lock._cond:
        return lock._writers_waiting


def _start(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_writer_waits_for_the_reader_then_runs():
    lock, events = ReadWriteLock(), []

    def write():
        with lock.write():
            events.append("write")

    with lock.read():
        writer = _start(write)
        _wait_until(lambda: _waiting_writers(lock) == 1, "the writer waits")
        assert events == []  # registered as waiting, and blocked by the reader
        events.append("read done")
    writer.join(30)
    assert events == ["read done", "write"]


def test_a_waiting_writer_goes_before_new_readers():
    lock, events = ReadWriteLock(), []
    reader_started = threading.Event()

    def write():
        with lock.write():
            events.append("write")

    def read():
        reader_started.set()
        with lock.read():
            events.append("second read")

    with lock.read():
        writer = _start(write)
        _wait_until(lambda: _waiting_writers(lock) == 1, "the writer waits")
        reader = _start(read)
        reader_started.wait(30)
    writer.join(30)
    reader.join(30)
    assert events == ["write", "second read"]


def test_reentrant_reads_and_writes_in_one_thread():
    lock = ReadWriteLock()
    with lock.write():
        with lock.write(), lock.read():
            assert lock.holds_read()
    with lock.read(), lock.read():
        assert lock.holds_read()
    assert not lock.holds_read()


def test_writing_from_inside_a_read_is_refused_not_a_deadlock():
    lock = ReadWriteLock()
    with lock.read():
        with pytest.raises(RuntimeError, match="from inside one of its own queries"):
            with lock.write():
                pass


def test_a_read_that_must_not_wait_is_refused_while_a_writer_holds_or_waits():
    """``read(wait=False)`` enters at once or raises BlockingIOError, never waits."""
    lock = ReadWriteLock()
    with lock.read(wait=False):  # free: entered
        assert lock.holds_read()
    entered, release = threading.Event(), threading.Event()

    def write():
        with lock.write():
            entered.set()
            release.wait(30)

    writer = _start(write)
    entered.wait(30)
    assert _refused(lock)  # a writer holds it
    release.set()
    writer.join(30)
    entered.clear()
    with lock.read():
        writer = _start(write)
        _wait_until(lambda: _waiting_writers(lock) == 1, "the writer waits")
        with lock.read(wait=False):  # re-entered by the thread that holds it
            pass
        other = []
        _start(lambda: other.append(_refused(lock))).join(30)
        assert other == [True]  # a writer waits: a new reader would wait behind it
    entered.wait(30)
    writer.join(30)
    assert not _refused(lock)


def _refused(lock):
    try:
        with lock.read(wait=False):
            return False
    except BlockingIOError:
        return True
