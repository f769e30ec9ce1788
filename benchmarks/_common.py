"""What the benchmark scripts share: machine description, timing, data, options, results.

Scripts run as ``python benchmarks/bench_x.py``, so this folder is
``sys.path[0]`` and they import this module as ``_common``; no script imports
another. Importing it also puts the repository root on ``sys.path`` (after
this folder), so that a run measures the checkout it belongs to.

- :func:`machine` / :func:`machine_text`: CPU, cores, versions, BLAS
  (threadpoolctl), ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``, load average
  when this module was imported and now;
- :func:`best_of`, :func:`best_of_interleaved`: best-of timings;
- :func:`manifold_data`, :func:`clustered`, :func:`split`, :func:`audio_files`:
  the data several scripts use (the numbers are those of the recorded results);
- :func:`parser`, :func:`parse`: ``--quick``, ``--out``, ``--repeats``;
- :func:`results_path`, :func:`write_results`: where a run writes; a
  ``--quick`` run writes into a temporary folder unless ``--out`` is given,
  so it never overwrites recorded results.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

#: 1-minute load average when the benchmark started (this module's import)
LOAD_AT_START = os.getloadavg()[0]
#: packages every machine description names
BASE_PACKAGES = ("numpy", "scikit-learn", "skfindkit")
NMSLIB_WHEEL = "PyPI wheel, no SIMD"


# ------------------------------------------------------------------ machine
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def _version(package):
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine(*packages):
    """The machine and software a run measured, as an ordered dict.

    Parameters
    ----------
    *packages : str
        Distribution names whose versions are recorded besides numpy,
        scikit-learn and skfindkit. ``"nmslib"`` among them also records that
        its PyPI wheel is built without SIMD (it says so when imported).
    """
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, "
                     f"{i.get('num_threads')} threads)"
                     for i in threadpool_info() if i["user_api"] == "blas")
    info = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        **{p: _version(p) for p in dict.fromkeys(BASE_PACKAGES + packages)},
        "blas": blas or "none loaded",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "unset"),
        "load average (1 min)": f"{LOAD_AT_START:.2f} at the start, "
                                f"{os.getloadavg()[0]:.2f} at the end",
    }
    if "nmslib" in packages:
        info["nmslib"] = f"{info['nmslib']}, {NMSLIB_WHEEL}"
    return info


def machine_text(*packages):
    """:func:`machine` as one line: ``key: value; key: value; ...``."""
    return "; ".join(f"{key}: {value}" for key, value in machine(*packages).items())


# ------------------------------------------------------------------- timing
def best_of(fn, repeats):
    """``(best seconds, last result)`` of ``repeats`` calls of ``fn``."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def best_of_interleaved(fns, repeat=3):
    """Best time of each function, running them in turn ``repeat`` times.

    Interleaving keeps a drift of the machine's speed (shared VM cores) from
    favouring whichever function would have been timed in a quieter block.
    """
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, fn_times in zip(fns, times):
            start = time.perf_counter()
            fn()
            fn_times.append(time.perf_counter() - start)
    return [min(fn_times) for fn_times in times]


# --------------------------------------------------------------------- data
def manifold_data(n, d, seed, n_clusters=200, intrinsic=16):
    """Clustered points whose variation lives in a low-dimensional subspace
    (an orthonormal basis: bench_exact, bench_sharded)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, intrinsic)))[0].T  # (intrinsic, d)
    centers = rng.normal(scale=6.0, size=(n_clusters, intrinsic))
    labels = rng.integers(0, n_clusters, n)
    latent = centers[labels] + rng.normal(size=(n, intrinsic))
    X = latent @ basis + 0.1 * rng.normal(size=(n, d))
    return X.astype(np.float32)


def clustered(n, d=128, intrinsic=16, n_clusters=200, seed=0):
    """Clustered float32 data of intrinsic dimension ``intrinsic`` (a random
    projection: bench_ann, bench_memory, bench_milvus, bench_persistence, bench_serve)."""
    rng = np.random.RandomState(seed)
    centers = rng.randn(n_clusters, intrinsic) * 3
    Z = centers[rng.randint(n_clusters, size=n)] + rng.randn(n, intrinsic)
    X = Z @ rng.randn(intrinsic, d) + 0.1 * rng.randn(n, d)
    return X.astype(np.float32)


def split(X, n_queries, seed=0):
    """``(items, queries)``: ``n_queries`` random rows of ``X`` held out."""
    order = np.random.RandomState(seed).permutation(len(X))
    return np.ascontiguousarray(X[order[n_queries:]]), np.ascontiguousarray(X[order[:n_queries]])


def audio_files(root, n, sr=22050, seconds=2.0):
    """``n`` mono WAVs (a random tone plus noise) written under ``root``; their paths."""
    import soundfile as sf

    rng = np.random.RandomState(0)
    t = np.arange(int(sr * seconds)) / sr
    paths = []
    for i in range(n):
        y = np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * 0.5 + 0.05 * rng.randn(t.size)
        path = os.path.join(root, f"clip{i:04d}.wav")
        sf.write(path, y.astype(np.float32), sr)
        paths.append(path)
    return paths


# ------------------------------------------------------- options, results
def parser(doc, repeats=3):
    """An argument parser with ``--quick``, ``--out`` and ``--repeats``.

    ``doc`` is the script's docstring (its first line describes the parser);
    ``repeats`` the default of ``--repeats``, or None for a script that
    repeats nothing (no ``--repeats`` option).
    """
    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    result.add_argument("--quick", action="store_true",
                        help="tiny sizes and 1 repeat: checks that the script runs; writes "
                             "into a temporary folder unless --out is given")
    result.add_argument("--out", help="the results file to write")
    if repeats is not None:
        result.add_argument("--repeats", type=int, default=repeats,
                            help="best of this many runs (default: %(default)s)")
    return result


def parse(argparser, argv=None, **quick):
    """Parse ``argv``; with ``--quick``, ``quick`` (and ``repeats=1``) become the
    defaults, so options given explicitly still win."""
    args = argparser.parse_args(argv)
    if args.quick:
        argparser.set_defaults(repeats=1, **quick)
        args = argparser.parse_args(argv)
    return args


def results_path(args, name):
    """Where this run writes its results file ``name``: ``--out`` if given,
    else ``results/name``, or for ``--quick`` a new temporary folder."""
    if args.out:
        return Path(args.out)
    if args.quick:
        return Path(tempfile.mkdtemp(prefix="skfindkit-bench-")) / name
    return RESULTS / name


def write_results(args, name, text, record=True):
    """Write ``text`` to :func:`results_path` and say where; return the path.

    With ``record=False`` (scripts whose full runs only print their table),
    a full run without ``--out`` writes nothing and returns None.
    """
    if not (record or args.out or args.quick):
        return None
    path = results_path(args, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)
    return path
