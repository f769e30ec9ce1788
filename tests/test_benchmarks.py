"""Every benchmark script runs with ``--quick`` and writes its results into a temporary folder.

The scripts run one after the other in one fresh interpreter (as ``python
benchmarks/bench_x.py --quick`` would: ``__main__``, the benchmarks folder
first on ``sys.path``, their own temporary folder), so that numpy, scikit-learn
and skfindkit are imported once instead of once per script; each test then
reads its script's exit status, output and results file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._optional import has

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

#: script -> (results file it writes, optional modules it needs)
SCRIPTS = {
    "bench_ann.py": ("ann.md", ("annoy", "nmslib", "hnswlib", "faiss", "matplotlib")),
    "bench_dask.py": ("dask.md", ("dask", "distributed", "librosa", "soundfile")),
    "bench_defaults.py": ("defaults.md", ("skimage", "librosa", "soundfile", "gensim")),
    "bench_exact.py": ("exact.md", ("faiss",)),
    "bench_extractors.py": ("extractors.md", ("keras",)),
    "bench_judged.py": ("judged.md", ("gensim",)),
    "bench_lifecycle.py": ("lifecycle.md", ("annoy", "nmslib", "hnswlib", "faiss")),
    "bench_loaders.py": ("loaders.md", ("librosa", "soundfile", "essentia", "gensim",
                                        "skimage")),
    "bench_memory.py": ("memory.md", ("hnswlib", "faiss", "annoy")),
    "bench_milvus.py": ("milvus.md", ("hnswlib", "pymilvus", "milvus_lite")),
    "bench_mmap.py": ("mmap.md", ()),
    "bench_persistence.py": ("persistence.md", ("annoy", "nmslib", "hnswlib", "faiss")),
    "bench_serve.py": ("serve.md", ("hnswlib", "fastapi", "uvicorn", "httpx")),
    "bench_sharded.py": ("sharded.md", ("hnswlib", "faiss")),
    "bench_text.py": ("text.md", ("gensim",)),
}


def test_every_script_is_listed():
    assert sorted(p.name for p in BENCHMARKS.glob("bench_*.py")) == sorted(SCRIPTS)


def test_no_script_imports_another():
    for script in SCRIPTS:
        source = (BENCHMARKS / script).read_text()
        assert "sys.path" not in source, script
        for other in SCRIPTS:
            assert f"import {other[:-3]}" not in source and f"from {other[:-3]} " not in source


def _recorded():
    return {p.name: p.read_bytes() for p in (BENCHMARKS / "results").iterdir()}


#: keras/TensorFlow start threads when imported: the script that imports them runs last
LAST = ("bench_extractors.py",)

_RUN_EACH = r"""
import json, os, runpy, sys, tempfile, traceback
status_file, benchmarks, jobs = sys.argv[1:]
sys.path.insert(0, benchmarks)
status = {}
for name, script, args, folder, log in json.loads(jobs):
    os.environ["TMPDIR"] = tempfile.tempdir = folder
    sys.argv = [os.path.join(benchmarks, script), *args]
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w") as out:
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
    status[name] = code
    with open(status_file, "w") as out:
        json.dump(status, out)
"""
#: the run of test_quick_run_keeps_explicit_options: options given with --quick
EXPLICIT = ("explicit", "bench_text.py", ["--quick", "--n", "300", "--out"])


def _missing(script):
    return [module for module in SCRIPTS[script][1] if not has(module)]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """``{name: (exit status or None if it never ran, output, its temporary folder)}``
    (a script's name, or ``"explicit"``), and whether the recorded results were left
    alone."""
    root = tmp_path_factory.mktemp("quick-runs")
    scripts = sorted((s for s in SCRIPTS if not _missing(s)), key=lambda s: (s in LAST, s))
    jobs = [(s, s, ["--quick"]) for s in scripts]
    if not _missing(EXPLICIT[1]):
        name, script, args = EXPLICIT
        jobs.insert(0, (name, script, [*args, str(root / name / "sub" / "text.md")]))
    jobs = [(name, script, args, str(root / name), str(root / f"{name}.log"))
            for name, script, args in jobs]
    for job in jobs:
        os.mkdir(job[3])
    recorded = _recorded()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", _RUN_EACH, str(root / "status.json"), str(BENCHMARKS),
         json.dumps(jobs)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    status_file = root / "status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    runs = {name: (status.get(name), Path(log).read_text() if os.path.exists(log) else "",
                   Path(folder)) for name, _, _, folder, log in jobs}
    return runs, done.stdout[-2000:] + done.stderr[-3000:], _recorded() == recorded


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_run(script, quick_runs):
    missing = _missing(script)
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    runs, runner_output, recorded_unchanged = quick_runs
    code, output, folder = runs[script]
    assert code == 0, f"exit status {code}:\n{output[-6000:]}\n{runner_output}"
    name = SCRIPTS[script][0]
    written = list(folder.rglob(name))
    assert len(written) == 1, (sorted(p.name for p in folder.rglob("*")), output[-2000:])
    assert written[0].read_text().strip()
    assert recorded_unchanged  # a quick run leaves the recorded results alone


@pytest.mark.slow
def test_quick_run_keeps_explicit_options(quick_runs):
    """Options given with ``--quick`` win over its sizes, and ``--out`` is where it writes."""
    missing = _missing(EXPLICIT[1])
    if missing:
        pytest.skip(f"{EXPLICIT[1]} needs {', '.join(missing)}")
    runs, runner_output, _ = quick_runs
    code, output, folder = runs[EXPLICIT[0]]
    assert code == 0, f"exit status {code}:\n{output[-6000:]}\n{runner_output}"
    text = (folder / "sub" / "text.md").read_text()
    assert "Data: 300 synthetic documents" in text
    assert "best of 1 interleaved runs" in text
