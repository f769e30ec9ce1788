"""Run scripts (benchmarks, examples) one after the other in one fresh interpreter.

Each script runs as ``python SCRIPT ARGS`` would run it: as ``__main__``, its
folder first on ``sys.path``, ``sys.argv`` set, in its own working directory
and temporary folder (``TMPDIR`` and :data:`tempfile.tempdir`), its output
(file descriptors 1 and 2, so its subprocesses' too) in its own log. numpy,
scikit-learn, matplotlib and skfindkit are then imported once for all the
scripts instead of once per script. A script that fails (an exception, a
non-zero ``sys.exit``) is recorded and the next one runs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

_RUN_EACH = r"""
import gc, json, os, runpy, sys, tempfile, traceback
status_file, jobs = sys.argv[1:]
base_path = sys.path[1:]  # without the working directory that -c puts first
status = {}
for name, script, args, cwd, tmp, log in json.loads(jobs):
    os.chdir(cwd)
    os.environ["TMPDIR"] = tempfile.tempdir = tmp
    sys.argv = [script, *args]
    sys.path[:] = [os.path.dirname(script), *base_path]
    sys.stdout.flush(), sys.stderr.flush()
    saved, start = (os.dup(1), os.dup(2)), os.times()
    with open(log, "w") as out:
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
        gc.collect()
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
    end = os.times()  # CPU seconds of this interpreter and of its waited-for children
    status[name] = [code, sum(end[:4]) - sum(start[:4])]
    with open(status_file, "w") as out:
        json.dump(status, out)
"""


def run_scripts(jobs, root, env, timeout=900):
    """Run ``jobs`` in one new interpreter; what each did.

    Parameters
    ----------
    jobs : list of tuple
        ``(name, script, args, cwd, tmp)``: a unique name, the script's path,
        its arguments, its working directory and its temporary folder (both
        exist).
    root : path
        A folder for the logs and the status file.
    env : dict
        The interpreter's environment.
    timeout : float
        Seconds for all the scripts together.

    Returns
    -------
    runs : dict
        ``{name: (exit status, or None if it never ran, its output, CPU seconds)}``.
    runner_output : str
        The end of the interpreter's own output (a crash of the interpreter).
    """
    root = Path(root)
    jobs = [(name, str(script), list(args), str(cwd), str(tmp), str(root / f"{name}.log"))
            for name, script, args, cwd, tmp in jobs]
    status_file = root / "status.json"
    done = subprocess.run([sys.executable, "-c", _RUN_EACH, str(status_file), json.dumps(jobs)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    runs = {}
    for name, *_, log in jobs:
        code, cpu = status.get(name, (None, None))
        runs[name] = (code, Path(log).read_text() if os.path.exists(log) else "", cpu)
    return runs, done.stdout[-2000:] + done.stderr[-3000:]
