"""A save interrupted at any moment leaves no temporary file behind for good.

An exception or a ``KeyboardInterrupt`` in the middle of a write removes the
temporary file at once; a process killed with SIGKILL cannot, so the next save
to the same path removes the temporaries of dead writers it recognizes as its
own (``.<name>.<pid>.<random>.tmp``), and only those.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from skfindkit import ExactIndex, io

from ._guard import _ROOT

_INTERRUPTED_SAVE = """
import os, signal, sys
import numpy as np
from skfindkit import ExactIndex, io

path, how = sys.argv[1], sys.argv[2]
index = ExactIndex().fit(np.random.RandomState(0).rand(20000, 8))
real_write, calls = io._write_piece, []

def interrupted(fh, piece):  # the header went out; the data is being written
    calls.append(len(piece))
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGINT)
    real_write(fh, piece)

io._write_piece = interrupted
try:
    io.save(index, path)
except KeyboardInterrupt:
    print("interrupted")
"""


def _interrupted_save(path, how):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_INTERRUPTED_SAVE), str(path), how],
        capture_output=True, text=True, timeout=240, env=env, cwd=_ROOT,
    )


def _skip_without_signals():
    if os.name == "nt":
        pytest.skip("POSIX signals (SIGKILL, SIGINT) are needed")


def test_keyboard_interrupt_mid_save_removes_the_temporary_file(tmp_path):
    _skip_without_signals()
    path = tmp_path / "index.skfk"
    io.save(ExactIndex().fit(np.eye(3)), path)
    done = _interrupted_save(path, "interrupt")
    assert "interrupted" in done.stdout, done.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["index.skfk"]
    assert io.load(path).n_samples_fit_ == 3  # the old file is intact


def test_next_save_removes_what_a_killed_save_left(tmp_path):
    _skip_without_signals()
    path = tmp_path / "index.skfk"
    done = _interrupted_save(path, "kill")
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".index.skfk."), left  # nothing can clean up
    # temporaries that are not a dead writer's of this path stay
    alive = f".index.skfk.{os.getpid()}.abc123.tmp"  # a live process (this one) writing
    for name in (alive, ".other.skfk.999999999.abc123.tmp", "index.skfk.999999999.x.tmp"):
        (tmp_path / name).write_bytes(b"x")
    io.save(ExactIndex().fit(np.eye(3)), path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [alive, ".other.skfk.999999999.abc123.tmp", "index.skfk", "index.skfk.999999999.x.tmp"])
    assert io.load(path).n_samples_fit_ == 3
