"""Every benchmark script runs with ``--quick`` and writes its results into a temporary folder.

The scripts run one after the other in one fresh interpreter, each as
``python benchmarks/bench_x.py --quick`` would run it (``tests/_scripts.py``),
so that numpy, scikit-learn and skfindkit are imported once instead of once
per script; each test then reads its script's exit status, output and results
file.
"""

import os
from pathlib import Path

import pytest

from ._optional import has
from ._scripts import run_scripts

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

#: the run of test_quick_run_keeps_explicit_options: options given with --quick
EXPLICIT = ("explicit", "bench_text.py", ["--quick", "--n", "300", "--out"])


def _missing(script):
    return [module for module in SCRIPTS[script][1] if not has(module)]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """``{name: (exit status or None if it never ran, output, its temporary folder)}``
    (a script's name, or ``"explicit"``), the runner's own output, and the recorded
    results files that the runs changed."""
    root = tmp_path_factory.mktemp("quick-runs")
    scripts = sorted((s for s in SCRIPTS if not _missing(s)), key=lambda s: (s in LAST, s))
    jobs = [(s, s, ["--quick"]) for s in scripts]
    if not _missing(EXPLICIT[1]):
        name, script, args = EXPLICIT
        jobs.insert(0, (name, script, [*args, str(root / name / "sub" / "text.md")]))
    for name, *_ in jobs:
        (root / name).mkdir()
    recorded = _recorded()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs, runner_output = run_scripts(
        [(name, BENCHMARKS / script, args, ROOT, root / name) for name, script, args in jobs],
        root, env)
    runs = {name: (code, output, root / name) for name, (code, output, _) in runs.items()}
    after = _recorded()
    changed = sorted(n for n in {*recorded, *after} if recorded.get(n) != after.get(n))
    return runs, runner_output, changed


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_run(script, quick_runs):
    missing = _missing(script)
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    runs, runner_output, changed = quick_runs
    code, output, folder = runs[script]
    assert code == 0, f"exit status {code}:\n{output[-6000:]}\n{runner_output}"
    name = SCRIPTS[script][0]
    written = list(folder.rglob(name))
    assert len(written) == 1, (sorted(p.name for p in folder.rglob("*")), output[-2000:])
    assert written[0].read_text().strip()
    assert not changed, changed  # a quick run leaves the recorded results alone


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
