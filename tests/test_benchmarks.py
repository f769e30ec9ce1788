"""Every benchmark script runs with ``--quick`` and writes its results into a temporary folder."""

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


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_run(script, tmp_path):
    name, needs = SCRIPTS[script]
    missing = [module for module in needs if not has(module)]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    recorded = _recorded()
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, f"benchmarks/{script}", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    written = list(tmp_path.rglob(name))
    assert len(written) == 1, (sorted(p.name for p in tmp_path.rglob("*")), done.stdout[-2000:])
    assert written[0].read_text().strip()
    assert _recorded() == recorded  # a quick run leaves the recorded results alone


@pytest.mark.slow
def test_quick_run_keeps_explicit_options(tmp_path):
    """Options given with ``--quick`` win over its sizes, and ``--out`` is where it writes."""
    if not has("gensim"):
        pytest.skip("bench_text.py needs gensim")
    out = tmp_path / "sub" / "text.md"
    done = subprocess.run([sys.executable, "benchmarks/bench_text.py", "--quick", "--n", "300",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    text = out.read_text()
    assert "Data: 300 synthetic documents" in text
    assert "best of 1 interleaved runs" in text
