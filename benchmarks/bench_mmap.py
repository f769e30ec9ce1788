"""Loading a large ExactIndex mapped (``io.load(path, mmap_mode="r")``) vs read into memory.

One ``--n`` x ``--d`` float32 ExactIndex is saved with :func:`skfindkit.io.save`
(the file then sits in the page cache: warm-cache timings, as for a service
restarted on the same machine). Each measurement runs in a fresh interpreter:

- **time to first query**: ``io.load`` plus one ``kneighbors`` of one query
  (k=10), which for an exact index is a full scan of its search matrix (saved
  in the file: euclidean's centred copy of the rows, so that file is about
  twice the data); three loads: read into memory, mapped and verified in full
  (``verify="always"``: what the first mapped load of a file costs), and
  mapped once a previous mapped load verified the unchanged file (the default
  ``verify="once"``: a restarted service, the next command, another worker);
- **resident memory** (RSS, from ``/proc/self/smaps_rollup``) after the load
  and after that first full scan, over the process's RSS before the load
  (imports done);
- **processes**: the mapped index loaded once, then 1 or 2 forked processes
  (what ``skfindkit serve --processes N`` does) each run the query; their
  total RSS and PSS (proportional set size: shared pages divided among the
  processes that map them, so their sum is the memory really used) after
  it, the loading parent included (interpreters and libraries too).

Metrics: euclidean (the query reads the mapped centred matrix) and
inner_product (the query reads the mapped rows directly). Linux only
(``/proc``). Run it from the repository root with the checkout importable
(``PYTHONPATH=.``) to measure that checkout rather than an installed copy.

Usage::

    python benchmarks/bench_mmap.py [--n 1000000] [--d 128] [--dir /tmp]
    python benchmarks/bench_mmap.py --quick  # 2,000 x 16

writes ``benchmarks/results/mmap.md`` (``--quick``: into a temporary folder
unless ``--out`` is given).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import _common

MIB = 2**20


def _memory():
    """``(rss, pss)`` bytes of this process."""
    found = {}
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                found[key] = int(rest.split()[0]) * 1024
    return found["Rss"], found["Pss"]


def _child(mode, path, processes):
    if mode == "verified-first":
        from skfindkit import io

        io.load(path, mmap_mode="r")
        return {}
    from skfindkit import ExactIndex, io
    from skfindkit.utils._safe_file import read_checked

    ExactIndex().fit(np.eye(2, dtype=np.float32)).kneighbors(np.eye(2), 1)  # imports paid
    if mode == "verified" and not read_checked(path, mapped=True, recorded=True).recorded:
        raise SystemExit(f"{path} has no record of a verification: the row would be wrong")
    base, _ = _memory()
    start = time.perf_counter()
    index = io.load(path, **LOADS[mode])
    loaded = time.perf_counter() - start
    rss_loaded, _ = _memory()
    query = np.full((1, index.n_features_in_), 0.5, dtype=np.float32)
    if processes == 0:  # one process: time to first query
        index.kneighbors(query, n_neighbors=10)
        first = time.perf_counter() - start
        rss_scanned, _ = _memory()
        return {"load_s": loaded, "first_query_s": first, "rss_loaded": rss_loaded - base,
                "rss_scanned": rss_scanned - base}
    read_end, write_end = os.pipe()
    pids = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            index.kneighbors(query, n_neighbors=10)
            os.write(write_end, (json.dumps(_memory()) + "\n").encode())
            time.sleep(2.0)  # alive while the others measure: shared pages stay shared
            os._exit(0)
        pids.append(pid)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        found = [json.loads(fh.readline()) for _ in pids]
    found.append(_memory())  # the parent, while its children are alive
    for pid in pids:
        os.waitpid(pid, 0)
    return {"rss_total": sum(r for r, _ in found), "pss_total": sum(p for _, p in found)}


#: how each kind of run loads the file: read; mapped and verified in full (a file never
#: loaded before); mapped once it has been verified and is unchanged (skfindkit's
#: record of that verification: a restarted service, the next command, another worker)
LOADS = {"read": {}, "mmap": {"mmap_mode": "r", "verify": "always"},
         "verified": {"mmap_mode": "r", "verify": "once"}}
LABELS = {"read": "read", "mmap": "mmap, verified in full",
          "verified": "mmap, verified before (unchanged)"}


def _settled(path):
    """Wait until the file is old enough for a record of its verification (a file
    changed within 2 s of its verification gets none: file times are coarse)."""
    from skfindkit.utils._verified import SETTLED_NS

    wait = (os.stat(path).st_ctime_ns + SETTLED_NS) / 1e9 + 0.1 - time.time()
    time.sleep(max(0.0, wait))


def _run(mode, path, processes=0):
    done = subprocess.run([sys.executable, __file__, "--child", mode, path, str(processes)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    argparser = _common.parser(__doc__, repeats=3)
    argparser.add_argument("--n", type=int, default=1_000_000)
    argparser.add_argument("--d", type=int, default=128)
    argparser.add_argument("--dir", default=None, help="folder of the index file")
    args = _common.parse(argparser, argv, n=2_000, d=16)
    from skfindkit import ExactIndex, io

    X = np.random.default_rng(0).standard_normal((args.n, args.d), dtype=np.float32)
    data_mib = X.nbytes / MIB
    lines = [f"# Mapped loading (`io.load(path, mmap_mode=\"r\")`): {args.n:,} x {args.d} "
             f"float32 ExactIndex ({data_mib:.0f} MiB of data)", "",
             f"Machine: {_common.machine_text()}", "",
             f"Command: `python benchmarks/bench_mmap.py {' '.join(argv or sys.argv[1:])}`",
             "", "Warm page cache (the file was just written). Best of "
             f"{args.repeats} runs for times; memory from the last run.", ""]
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        # the records of verified files in a folder of this run (not the user's cache)
        os.environ["SKFINDKIT_CACHE_DIR"] = os.path.join(folder, "cache")
        from skfindkit.utils._verified import WRITEBACK_FILE_SYSTEMS, file_system

        system = file_system(os.stat(folder))
        modes = [m for m in LOADS if m != "verified" or system in WRITEBACK_FILE_SYSTEMS]
        if "verified" not in modes:
            lines += [f"{folder} is on {system}: skfindkit keeps no records of verified files "
                      "there (docs/mmap.md), so there is no 'verified before' row.", ""]
        # --quick checks that the script runs: one metric, 2 forked processes only
        # (each run is a fresh interpreter)
        for metric in ("euclidean",) if args.quick else ("euclidean", "inner_product"):
            path = os.path.join(folder, f"{metric}.skfk")
            io.save(ExactIndex(metric=metric).fit(X), path)
            rows = {}
            for mode in modes:
                if mode == "verified":  # one mapped load that verifies and records it
                    _settled(path)
                    _run("verified-first", path)
                runs = [_run(mode, path) for _ in range(args.repeats)]
                rows[mode] = {**runs[-1], "load_s": min(r["load_s"] for r in runs),
                              "first_query_s": min(r["first_query_s"] for r in runs)}
            procs = {(mode, n): _run(mode, path, n) for mode in ("read", "mmap")
                     for n in ((2,) if args.quick else (1, 2))}
            lines += [f"## metric={metric}", "",
                      "| load | load (s) | to first query (s) | + RSS after load (MiB) "
                      "| + RSS after first full scan (MiB) |", "|---|---|---|---|---|"]
            for mode, r in rows.items():
                lines.append(f"| {LABELS[mode]} | {r['load_s']:.3f} | "
                             f"{r['first_query_s']:.3f} | {r['rss_loaded'] / MIB:.0f} | "
                             f"{r['rss_scanned'] / MIB:.0f} |")
            read = rows["read"]["first_query_s"]
            lines += ["", "Faster to the first query than a read: mapped and verified in "
                      f"full {read / rows['mmap']['first_query_s']:.1f}x" + (
                          f"; mapped, verified before "
                          f"{read / rows['verified']['first_query_s']:.1f}x"
                          if "verified" in rows else "") + ".", "",
                      "| load, then forked processes | total RSS (MiB) | total PSS (MiB) |",
                      "|---|---|---|"]
            for (mode, n), r in procs.items():
                lines.append(f"| {mode}, {n} | {r['rss_total'] / MIB:.0f} | "
                             f"{r['pss_total'] / MIB:.0f} |")
            lines.append("")
    text = "\n".join(lines)
    print(text, flush=True)
    _common.write_results(args, "mmap.md", text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
