"""ExactIndex vs scikit-learn brute force: queries per second, single thread.

Data: 100k x 128 float32 points on a low-dimensional manifold (clusters whose
spread lives in a 16-dimensional subspace, plus small isotropic noise), so
that neighbours mean something; in-distribution queries come from the same
generator, out-of-distribution queries from fresh clusters. k = 10, 1,000
queries. Both run in this one process, single-threaded (``n_jobs=1`` for
skfindkit; ``threadpool_limits(1)`` for scikit-learn and the raw GEMM), best
of ``--repeats`` interleaved runs. The raw float32 matrix product of the
same shapes is timed too: it is the floor any brute-force method pays; faiss's
exact ``IndexFlatL2`` (one OpenMP thread) runs in the same loop. A second table
does the same on a small collection (sklearn digits, 1,597 x 64, 200
queries), where fixed per-call costs dominate. A third table runs data made to
defeat float32 (a far outlier, two clusters far apart, near-duplicates) and
checks every answer there against a float64 brute force from differences.

    python benchmarks/bench_exact.py [--n 100000] [--repeats 5] [--quick]

writes ``benchmarks/results/exact.md``.
"""

import argparse
from pathlib import Path

import numpy as np
from _common import best_of, machine, manifold_data
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from skfindkit import ExactIndex
from skfindkit.metrics import recall_at_k

RESULTS = Path(__file__).parent / "results"


def small_collection(repeats, k):
    """Per-call times on sklearn digits (1,597 items, 200 queries): fixed costs dominate."""
    import faiss
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(data))
    X, Q = np.ascontiguousarray(data[order[200:]]), np.ascontiguousarray(data[order[:200]])
    sk = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X)
    ours = ExactIndex(n_neighbors=k, n_jobs=1).fit(X)
    flat = faiss.IndexFlatL2(X.shape[1])
    flat.add(X)
    t_sk, t_ours, t_faiss = [], [], []
    for _ in range(repeats):
        t_sk.append(best_of(lambda: sk.kneighbors(Q), 1)[0])
        t_ours.append(best_of(lambda: ours.kneighbors(Q), 1)[0])
        t_faiss.append(best_of(lambda: flat.search(Q, k), 1)[0])
    return {"n": len(X), "nq": len(Q), "repeats": repeats, "sk": min(t_sk),
            "ours": min(t_ours), "faiss": min(t_faiss)}


def adversarial_data(n, d, queries, seed=2):
    """``{name: (X, Q)}``: collections where float32 scores cannot be trusted.

    Queries come from each collection's own distribution.
    """
    rng = np.random.default_rng(seed)
    base = manifold_data(n + queries, d, seed=seed)
    X, Q = base[:n].copy(), base[n:].copy()
    outlier = X.copy()
    outlier[0, 0] = 1e6
    far = X.copy()
    far[n // 2:] += np.float32(1e6)
    Q_far = Q.copy()
    Q_far[queries // 2:] += np.float32(1e6)
    copies = 40
    seeds = X[: n // copies]
    dup = np.repeat(seeds, copies, axis=0)[:n]
    dup = dup * (1 + np.float32(1e-4) * rng.standard_normal(dup.shape, dtype=np.float32))
    Q_dup = seeds[rng.integers(0, len(seeds), queries)]
    Q_dup = Q_dup * (1 + np.float32(1e-4) * rng.standard_normal(Q_dup.shape, dtype=np.float32))
    return {
        "far outlier (one row at 1e6)": (outlier, Q),
        "two clusters 1e6 apart": (far, Q_far),
        "near-duplicates (40 copies, jitter 1e-4)": (dup.astype(np.float32), Q_dup.astype(np.float32)),
    }


def float64_truth(X, Q, k):
    """Exact k nearest by float64 differences (no cancellation), ties by id."""
    X64 = X.astype(np.float64)
    ind = np.empty((len(Q), k), dtype=np.intp)
    for r, q in enumerate(Q.astype(np.float64)):
        d2 = ((X64 - q) ** 2).sum(axis=1)
        ind[r] = np.lexsort((np.arange(len(X)), d2))[:k]
    return ind


def adversarial(args):
    rows = []
    checked = min(args.queries, 50)
    for name, (X, Q) in adversarial_data(args.n, args.d, args.queries).items():
        sk = NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(X)
        ours = ExactIndex(n_neighbors=args.k, n_jobs=1).fit(X)
        ours.kneighbors(Q[:50]), sk.kneighbors(Q[:50])  # warm up (builds the matrix)
        t_sk, t_ours = [], []
        for _ in range(args.repeats):
            t, (_, i_sk) = best_of(lambda: sk.kneighbors(Q), 1)
            t_sk.append(t)
            t, (_, i_ours) = best_of(lambda: ours.kneighbors(Q), 1)
            t_ours.append(t)
        truth = float64_truth(X, Q[:checked], args.k)
        rows.append({
            "data": name, "sklearn_qps": len(Q) / min(t_sk), "ours_qps": len(Q) / min(t_ours),
            "ratio": min(t_sk) / min(t_ours), "checked": checked,
            "ours_exact": recall_at_k(truth, i_ours[:checked]),
            "sklearn_exact": recall_at_k(truth, i_sk[:checked]),
        })
        print(rows[-1])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "exact.md"))
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run that only checks the script works (n=3000, 100 queries, "
                             "1 repeat, results to a temporary file unless --out is given)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.repeats = 3000, 100, 1
        if args.out == str(RESULTS / "exact.md"):
            import tempfile
            args.out = str(Path(tempfile.mkdtemp()) / "exact.md")

    # one generator call, so in-distribution queries share the clusters
    data = manifold_data(args.n + args.queries, args.d, seed=0)
    X, Q_in = data[: args.n], data[args.n:]
    Q_out = manifold_data(args.queries, args.d, seed=1)  # other clusters, other subspace

    import faiss

    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(args.d)
    flat.add(X)
    rows = []
    with threadpool_limits(1):
        sk = NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(X)
        ours = ExactIndex(n_neighbors=args.k, n_jobs=1).fit(X)
        for name, Q in (("in-distribution", Q_in), ("out-of-distribution", Q_out)):
            ours.kneighbors(Q[:50]), sk.kneighbors(Q[:50])  # warm up
            t_gemm, t_sk, t_ours, t_faiss = [], [], [], []
            for _ in range(args.repeats):  # interleaved, best of each
                t_gemm.append(best_of(lambda: Q @ X.T, 1)[0])
                t, (_, i_faiss) = best_of(lambda: flat.search(Q, args.k), 1)
                t_faiss.append(t)
                t, (d_sk, i_sk) = best_of(lambda: sk.kneighbors(Q), 1)
                t_sk.append(t)
                t, (d_ours, i_ours) = best_of(lambda: ours.kneighbors(Q), 1)
                t_ours.append(t)
            nq = Q.shape[0]
            rows.append({
                "queries": name,
                "gemm_qps": nq / min(t_gemm), "sklearn_qps": nq / min(t_sk),
                "ours_qps": nq / min(t_ours), "ratio": min(t_sk) / min(t_ours),
                "faiss_qps": nq / min(t_faiss), "vs_faiss": min(t_faiss) / min(t_ours),
                "faiss_recall": recall_at_k(i_sk, i_faiss),
                "recall": recall_at_k(i_sk, i_ours),
                "max_dist_diff": float(np.abs(d_sk - d_ours).max()),
            })
            print(rows[-1])
        small = small_collection(args.repeats * 6, args.k)
        hard = adversarial(args)

    info = machine()
    lines = [
        "# ExactIndex vs scikit-learn brute force",
        "",
        f"Command: `python benchmarks/bench_exact.py --n {args.n} --repeats {args.repeats}`  ",
        f"Data: {args.n:,} x {args.d} float32 (200 clusters on a 16-dim subspace + noise), "
        f"{args.queries:,} queries, k = {args.k}, single thread, best of {args.repeats} "
        "interleaved runs.  ",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()),
        "",
        "| queries | raw float32 GEMM q/s (floor) | sklearn brute q/s | faiss IndexFlatL2 q/s "
        "| ExactIndex q/s | ExactIndex / sklearn | ExactIndex / faiss | recall@k vs sklearn "
        "(faiss) | max abs distance diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['queries']} | {r['gemm_qps']:,.0f} | {r['sklearn_qps']:,.0f} | "
            f"{r['faiss_qps']:,.0f} | {r['ours_qps']:,.0f} | **{r['ratio']:.2f}x** | "
            f"**{r['vs_faiss']:.2f}x** | {r['recall']:.4f} ({r['faiss_recall']:.4f}) | "
            f"{r['max_dist_diff']:.2e} |"
        )
    lines += [
        "",
        f"Small collection (sklearn digits, {small['n']} x 64 float32, {small['nq']} queries, "
        f"k = {args.k}, single thread, best of {small['repeats']} interleaved calls):",
        "",
        "| sklearn brute ms/call | faiss IndexFlatL2 ms/call | ExactIndex ms/call "
        "| ExactIndex / sklearn (speed) |",
        "|---:|---:|---:|---:|",
        f"| {small['sk'] * 1e3:.2f} | {small['faiss'] * 1e3:.2f} | {small['ours'] * 1e3:.2f} "
        f"| **{small['sk'] / small['ours']:.2f}x** |",
    ]
    lines += [
        "",
        f"Data made to defeat float32 ({args.n:,} x {args.d}, {args.queries:,} queries from "
        f"each collection's distribution, k = {args.k}, single thread, best of {args.repeats}); "
        f"'exact' is recall@k against a float64 brute force from differences on the first "
        f"{hard[0]['checked'] if hard else 0} queries:",
        "",
        "| data | sklearn brute q/s | ExactIndex q/s | ExactIndex / sklearn | ExactIndex exact "
        "| sklearn exact |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in hard:
        lines.append(
            f"| {r['data']} | {r['sklearn_qps']:,.0f} | {r['ours_qps']:,.0f} | "
            f"**{r['ratio']:.2f}x** | {r['ours_exact']:.4f} | {r['sklearn_exact']:.4f} |"
        )
    lines += [
        "",
        "The GEMM column times only `Q @ X.T` (no selection, no distances): the "
        "ceiling of any brute-force method on this BLAS. ExactIndex adds the "
        "grouped top-k prefilter, the error bound that proves the candidates hold "
        "the k nearest, and their exact float64 distances; scikit-learn computes "
        "float64 distances in chunks and partitions each row.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
