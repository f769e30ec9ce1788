"""Run a function in a child process, so that a native crash fails a test instead of the run.

One spawned worker is reused (the imports are paid once); when a child dies
(segfault, abort), :func:`run_isolated` reports it as :class:`ChildCrashed`,
when it runs past its timeout it is killed and reported as
:class:`ChildHung`; the next call starts a fresh worker.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

__all__ = ["ChildCrashed", "ChildHung", "run_isolated"]

_pool = None


class ChildCrashed(RuntimeError):
    """The child process running a case died (a crash in native code)."""


class ChildHung(RuntimeError):
    """The child process running a case did not finish in time (it was killed)."""


def _executor():
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


def run_isolated(func, *args, timeout=300):
    """``func(*args)`` in a child process; raises :class:`ChildCrashed` if it dies.

    ``func`` must be importable by name (a module-level function).
    """
    global _pool
    future = _executor().submit(func, *args)
    try:
        return future.result(timeout=timeout)
    except BrokenProcessPool as exc:
        _pool = None
        raise ChildCrashed(f"{func.__name__}{args!r} killed its process: {exc}") from None
    except TimeoutError:
        pool, _pool = _pool, None
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()  # this pool's own worker, started above
        pool.shutdown(wait=True, cancel_futures=True)
        raise ChildHung(f"{func.__name__}{args!r} ran past {timeout} s") from None
