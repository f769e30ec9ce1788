"""Memory of an index with and without its float32 copy (``keep_vectors``).

For each backend, a fresh interpreter loads ``--n`` x 128 float32 clustered
rows (the generator of ``bench_ann.py``, saved once to a temporary .npy), fits the
index with ``keep_vectors=True`` or ``False``, answers 1,000 queries, then
drops its own reference to the input array. Reported: the peak resident
memory of build + query above the interpreter's baseline (libraries imported,
data not yet loaded; the input rows are included) and the memory the fitted
index still holds once the input is dropped.

    python benchmarks/bench_memory.py [--n 100000] [--out PATH]
    python benchmarks/bench_memory.py --quick  # 2,000 rows, hnswlib only

prints a Markdown table (recorded in ``benchmarks/results/ann.md``) and writes
it to ``--out`` if given (``--quick``: into a temporary folder otherwise).
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from _common import clustered, machine_text, parse, parser, write_results

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
    options = parser(__doc__, repeats=None)
    options.add_argument("--n", type=int, default=100_000)
    options.add_argument("--indexes", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                         metavar="NAME", help="configurations to measure (default: all)")
    options.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parse(options, n=2000, indexes=["hnswlib (M=16)"])
    if args.child:
        path, name, keep = args.child
        child(path, name, keep == "True")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npy")
        np.save(path, clustered(args.n + 1000))
        for name in args.indexes:
            cells = []
            for keep in (True, False):
                out = subprocess.run([sys.executable, __file__, "--child", path, name, str(keep)],
                                     capture_output=True, text=True, check=True)
                cells.append(json.loads(out.stdout.strip().splitlines()[-1]))
            rows.append((name, cells))
            print(name, cells, flush=True)
    data_mib = args.n * 128 * 4 / 2**20
    lines = [f"Command: `python benchmarks/bench_memory.py {' '.join(sys.argv[1:])}`.  ",
             f"Machine: {machine_text('hnswlib', 'faiss-cpu', 'annoy')}.", "",
             f"| index ({args.n} x 128 float32, input {data_mib:.0f} MiB) | peak MiB, "
             "keep_vectors=True | peak MiB, False | held after fit MiB, True | held MiB, False |",
             "|---|---:|---:|---:|---:|"]
    for name, (kept, lean) in rows:
        lines.append(f"| {name} | {kept['peak']:.0f} | {lean['peak']:.0f} | "
                     f"{kept['held']:.0f} | {lean['held']:.0f} |")
    print("\n" + "\n".join(lines))
    write_results(args, "memory.md", "\n".join(lines), record=False)


if __name__ == "__main__":
    main()
