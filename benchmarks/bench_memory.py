"""Memory of an index with and without its float32 copy (``keep_vectors``).

For each backend, a fresh interpreter loads ``--n`` x 128 float32 clustered
rows (``bench_ann.py``'s generator, saved once to a temporary .npy), fits the
index with ``keep_vectors=True`` or ``False``, answers 1,000 queries, then
drops its own reference to the input array. Reported: the peak resident
memory of build + query above the interpreter's baseline (libraries imported,
data not yet loaded; the input rows are included) and the memory the fitted
index still holds once the input is dropped.

    python benchmarks/bench_memory.py [--n 100000]

prints a Markdown table (recorded in ``benchmarks/results/ann.md``).
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CONFIGS = {
    "hnswlib (M=16)": ("HNSWIndex", {"M": 16, "ef_construction": 100, "random_state": 0}),
    "faiss HNSW32": ("FaissIndex", {"factory": "HNSW32"}),
    "faiss IVF1024,Flat": ("FaissIndex", {"factory": "IVF1024,Flat", "nprobe": 8,
                                          "random_state": 0}),
    "annoy (20 trees)": ("AnnoyIndex", {"n_trees": 20, "random_state": 0}),
}


def _status_mib(field):
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak since reset), MiB."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def child(path, name, keep):
    import skfindkit

    cls, params = CONFIGS[name]
    index = getattr(skfindkit, cls)(n_neighbors=10, n_jobs=1, keep_vectors=keep, **params)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to now
        fh.write("5")
    base = _status_mib("VmRSS")
    X = np.load(path)
    Q, X = X[:1000].copy(), X[1000:]
    index.fit(X)
    index.kneighbors(Q)
    del X
    gc.collect()
    print(json.dumps({"peak": _status_mib("VmHWM") - base, "held": _status_mib("VmRSS") - base}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        path, name, keep = args.child
        child(path, name, keep == "True")
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_ann import clustered

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npy")
        np.save(path, clustered(args.n + 1000))
        for name in CONFIGS:
            cells = []
            for keep in (True, False):
                out = subprocess.run([sys.executable, __file__, "--child", path, name, str(keep)],
                                     capture_output=True, text=True, check=True)
                cells.append(json.loads(out.stdout.strip().splitlines()[-1]))
            rows.append((name, cells))
            print(name, cells, flush=True)
    data_mib = args.n * 128 * 4 / 2**20
    print(f"\n| index ({args.n} x 128 float32, input {data_mib:.0f} MiB) | peak MiB, "
          "keep_vectors=True | peak MiB, False | held after fit MiB, True | held MiB, False |")
    print("|---|---:|---:|---:|---:|")
    for name, (kept, lean) in rows:
        print(f"| {name} | {kept['peak']:.0f} | {lean['peak']:.0f} | {kept['held']:.0f} | "
              f"{lean['held']:.0f} |")


if __name__ == "__main__":
    main()
