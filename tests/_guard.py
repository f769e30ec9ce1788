"""Run crash-prone code in a child interpreter, so that a crash fails one test.

Native libraries that are misused from several threads die with SIGSEGV or
SIGABRT, which would kill the whole pytest run; :func:`run_guarded` runs the
snippet in a fresh ``python -c`` (this checkout first on ``sys.path``) and
turns a signal death, a non-zero exit or a timeout into a test failure that
names it.
"""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])


def run_guarded(code, timeout=240):
    """Run ``code`` in a child interpreter; return its stdout, fail the test otherwise."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=_ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the guarded child did not finish within {timeout} s (deadlock?)")
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        pytest.fail(f"the guarded child was killed by {name}:\n{done.stderr[-3000:]}")
    if done.returncode != 0:
        pytest.fail(f"the guarded child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout
