"""Removal and filtered search: recall@10 and queries/s of every index.

Part 1: after removing 10 % and 50 % of ``--n`` items (random ids), recall@10
of each index against an exact search of the live items, and its queries/s,
next to the same index rebuilt on the live items only (its ids mapped back).
Part 2: filtered search at 50 %, 10 % and 1 % selectivity (a random mask
shared by the queries), recall@10 against the exact filtered truth and
queries/s, next to the unfiltered query. Default settings of every index,
``n_jobs=1``, BLAS limited to one thread; best of ``--repeats``.

    python benchmarks/bench_lifecycle.py [--n 100000] [--repeats 3]
    python benchmarks/bench_lifecycle.py --quick  # 3,000 x 64, 100 queries, 1 repeat
    python benchmarks/bench_lifecycle.py --index AnnoyIndex --out annoy.md  # some indexes

writes ``benchmarks/results/lifecycle.md`` (``--quick``: into a temporary
folder unless ``--out`` is given).
"""

import numpy as np
from _common import best_of, clustered, machine_text, parse, parser, split, write_results
from threadpoolctl import threadpool_limits

from skfindkit import AnnoyIndex, ExactIndex, FaissIndex, HNSWIndex, NMSLibIndex
from skfindkit.metrics import recall_at_k

K = 10


def indexes():
    """name -> a fresh index with its documented defaults (one thread)."""
    return {
        "ExactIndex": lambda: ExactIndex(n_neighbors=K, n_jobs=1),
        "HNSWIndex": lambda: HNSWIndex(n_neighbors=K, random_state=0, n_jobs=1),
        "AnnoyIndex": lambda: AnnoyIndex(n_neighbors=K, random_state=0, n_jobs=1),
        "NMSLibIndex": lambda: NMSLibIndex(n_neighbors=K, n_jobs=1),
        "FaissIndex IVF": lambda: FaissIndex(factory="IVF256,Flat", nprobe=16, n_neighbors=K,
                                             random_state=0, n_jobs=1),
        "FaissIndex HNSW": lambda: FaissIndex(factory="HNSW32,Flat", n_neighbors=K, n_jobs=1),
    }


def timed(index, Q, repeats, **kwargs):
    """(queries/s, ids) of ``index.kneighbors(Q, K, **kwargs)``."""
    seconds, ind = best_of(lambda: index.kneighbors(Q, K, return_distance=False, **kwargs),
                           repeats)
    return Q.shape[0] / seconds, ind


def removal_rows(name, make, X, Q, repeats):
    rows = []
    rng = np.random.default_rng(0)
    for share in (0.1, 0.5):
        gone = rng.choice(X.shape[0], int(share * X.shape[0]), replace=False)
        live = np.setdiff1d(np.arange(X.shape[0]), gone)
        truth = live[ExactIndex(n_neighbors=K).fit(X[live]).kneighbors(Q, return_distance=False)]
        index = make().fit(X)
        index.remove(gone)
        qps, ind = timed(index, Q, repeats)
        rebuilt = make().fit(X[live])
        qps_r, ind_r = timed(rebuilt, Q, repeats)
        rows.append(f"| {name} | {share:.0%} | {recall_at_k(truth, ind):.3f} | {qps:,.0f} | "
                    f"{recall_at_k(truth, live[ind_r]):.3f} | {qps_r:,.0f} |")
    return rows


def filter_rows(name, make, X, Q, repeats):
    index = make().fit(X)
    exact = ExactIndex(n_neighbors=K).fit(X)
    qps0, ind0 = timed(index, Q, repeats)
    rows = [f"| {name} | none | {recall_at_k(exact.kneighbors(Q, return_distance=False), ind0):.3f}"
            f" | {qps0:,.0f} | 1.00 |"]
    rng = np.random.default_rng(1)
    for share in (0.5, 0.1, 0.01):
        mask = rng.random(X.shape[0]) < share
        truth = exact.kneighbors(Q, return_distance=False, filter=mask)
        qps, ind = timed(index, Q, repeats, filter=mask)
        rows.append(f"| {name} | {share:.0%} | {recall_at_k(truth, ind):.3f} | {qps:,.0f} | "
                    f"{qps / qps0:.2f} |")
    return rows


def main():
    options = parser(__doc__)
    options.add_argument("--n", type=int, default=100_000, help="items (default: %(default)s)")
    options.add_argument("--d", type=int, default=128, help="dimensions (default: %(default)s)")
    options.add_argument("--queries", type=int, default=1000,
                         help="queries (default: %(default)s)")
    options.add_argument("--index", action="append", choices=list(indexes()),
                         help="only this index (repeatable; default: every index)")
    args = parse(options, n=3000, d=64, queries=100)
    X, Q = split(clustered(args.n + args.queries, d=args.d), args.queries)
    removal, filtered = [], []
    with threadpool_limits(1):
        for name, make in indexes().items():
            if args.index and name not in args.index:
                continue
            print(name, flush=True)
            removal += removal_rows(name, make, X, Q, args.repeats)
            filtered += filter_rows(name, make, X, Q, args.repeats)
    text = "\n".join([
        "# Removal and filtered search",
        "",
        f"Command: `python benchmarks/bench_lifecycle.py --n {args.n} --d {args.d} "
        f"--queries {args.queries} --repeats {args.repeats}`"
        + (" (--quick)" if args.quick else ""),
        "",
        f"Machine: {machine_text('hnswlib', 'annoy', 'nmslib', 'faiss-cpu')}",
        "",
        f"Data: {X.shape[0]:,} x {args.d} float32 (clustered, bench_ann.py's generator), "
        f"{args.queries:,} held-out queries, k = {K}, one thread, best of {args.repeats}.",
        "",
        "## After removals (tombstones, over-fetch) vs rebuilt on the live items",
        "",
        "recall@10 against an exact search of the live items.",
        "",
        "| index | removed | recall@10 | queries/s | rebuilt recall@10 | rebuilt queries/s |",
        "|---|---|---|---|---|---|",
        *removal,
        "",
        "## Filtered search (one random mask shared by the queries)",
        "",
        "recall@10 against the exact filtered truth; speed relative to the unfiltered query.",
        "",
        "| index | selectivity | recall@10 | queries/s | vs unfiltered |",
        "|---|---|---|---|---|",
        *filtered,
    ])
    print(text)
    write_results(args, "lifecycle.md", text)


if __name__ == "__main__":
    main()
