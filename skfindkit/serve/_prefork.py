"""``skfindkit serve --processes N``: N server processes forked from one loaded pipeline.

The pipeline is loaded once, with its arrays mapped from the file
(``skfindkit.io.load(path, mmap_mode="r")``), and the listening socket bound
once; then N children are forked, each running uvicorn on that socket (the
kernel spreads the connections). The children share the mapped file through
the page cache and the rest of the parent's memory copy-on-write: N processes
cost about one copy of the data, plus what each builds at its first query
(an :class:`~skfindkit.ExactIndex` saved with its search matrix builds
nothing: the matrix is mapped and shared too; see ``docs/mmap.md``).

All of them read the mapped file at every query: it must not be truncated or
rewritten in place while they run (``docs/mmap.md``); replace it by renaming.

POSIX only (``os.fork``). The parent waits for its children; SIGINT/SIGTERM
are passed on to them, and it exits once they all have.
"""

import os
import signal

__all__ = ["serve_forked"]


def _run_child(config, sock):
    import uvicorn

    code = 0
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
        code = 1
    finally:
        os._exit(code)


def serve_forked(app, *, host, port, processes, log_level="info", access_log=True):
    """Serve ``app`` from ``processes`` forked processes sharing one socket; their exit code."""
    import uvicorn

    if not hasattr(os, "fork"):
        raise ValueError("--processes needs os.fork (POSIX); use one process here")
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            access_log=access_log)
    sock = config.bind_socket()
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            _run_child(config, sock)
        children.append(pid)
    sock.close()

    def forward(signum, frame):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        for pid in children:
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
            code = code or (os.waitstatus_to_exitcode(status) not in (0, -signal.SIGINT,
                                                                       -signal.SIGTERM))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return int(code)
