"""Approximate indexes: recall@10 vs queries/s, wrapper vs raw backend, build time, memory.

For each dataset, every skfindkit approximate index and the raw library
called directly with identical parameters are built (single thread) and
queried over a sweep of the query-time knob (annoy ``search_k``, graph indexes'
``ef_search``, faiss ``nprobe``); each point is the best of ``--repeats``
interleaved runs (wrapper, raw, wrapper, raw...), so the wrapper/raw ratios
compare runs made under the same machine load. ``ExactIndex`` and
scikit-learn's brute force (BLAS limited to one thread) are the references.

Datasets: (a) ``--n`` x 128 float32 clustered data of intrinsic dimension 16
(neighbours are meaningful, unlike i.i.d. Gaussian data), (b) sklearn digits,
(c) features produced offline by skfindkit's ``SklearnFeatureExtractor``
(PCA to 32 dimensions of 8x8 colour patches of sklearn's bundled sample
images).

A second part measures exact re-ranking (``refine``) on (a), with
in-distribution queries and an out-of-distribution set (queries from other
clusters in another subspace, as in ``bench_exact.py``): every index with and
without ``refine``, including faiss IVF + 4-bit PQ fast-scan codes, against
scikit-learn's brute force on the same query set.

Usage::

    python benchmarks/bench_ann.py [--n 100000] [--queries 1000] [--repeats 5] [--out PATH]
    python benchmarks/bench_ann.py --quick  # tiny sizes, 1 repeat: checks the script runs

writes ``benchmarks/results/ann.md`` and ``ann_recall_qps.png`` beside it (``--quick``:
into a temporary folder unless ``--out`` is given).
"""

import os
import pickle
import sys
import time
import warnings

import numpy as np
from _common import best_of, clustered, machine_text, parse, parser, results_path, split
from threadpoolctl import threadpool_limits

from skfindkit import AnnoyIndex, ExactIndex, FaissIndex, HNSWIndex, NMSLibIndex
from skfindkit.metrics import recall_at_k

K = 10
PACKAGES = ("annoy", "nmslib", "hnswlib", "faiss-cpu")


# ------------------------------------------------------------------ data
def digits():
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


def patch_features(n=20000, seed=0):
    from sklearn.datasets import load_sample_images
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.image import extract_patches_2d

    from skfindkit import SklearnFeatureExtractor

    rng = np.random.RandomState(seed)
    patches = np.vstack([
        extract_patches_2d(img, (8, 8), max_patches=n // 2, random_state=rng).reshape(n // 2, -1)
        for img in load_sample_images().images
    ]).astype(np.float32) / 255.0
    return SklearnFeatureExtractor(PCA(n_components=32, random_state=0)).fit_transform(patches)


# ------------------------------------------------------- raw backends
class RawAnnoy:
    def __init__(self, n_trees, seed):
        self.n_trees, self.seed = n_trees, seed

    def build(self, X):
        import annoy

        self.index = annoy.AnnoyIndex(X.shape[1], "euclidean")
        self.index.set_seed(self.seed)
        for i, row in enumerate(X):
            self.index.add_item(i, row)
        self.index.build(self.n_trees, n_jobs=1)

    def query(self, Q, knob):
        get = self.index.get_nns_by_vector
        return np.array([get(q, K, knob, True)[0] for q in Q])


class RawNMSLib:
    share_native = True  # queries run on the wrapper's own graph (nmslib has no seed)

    def __init__(self, M, ef_construction):
        self.params = {"M": M, "efConstruction": ef_construction, "post": 0, "indexThreadQty": 1}

    def build(self, X):
        import nmslib

        self.index = nmslib.init(method="hnsw", space="l2")
        self.index.addDataPointBatch(X)
        self.index.createIndex(self.params, print_progress=False)

    def query(self, Q, knob):
        self.index.setQueryTimeParams({"efSearch": knob})
        return np.array([r[0] for r in self.index.knnQueryBatch(Q, k=K, num_threads=1)])


class RawHNSW:
    def __init__(self, M, ef_construction, seed):
        self.M, self.efc, self.seed = M, ef_construction, seed

    def build(self, X):
        import hnswlib

        self.index = hnswlib.Index(space="l2", dim=X.shape[1])
        self.index.init_index(len(X), ef_construction=self.efc, M=self.M, random_seed=self.seed)
        self.index.add_items(X, np.arange(len(X)), num_threads=1)

    def query(self, Q, knob):
        self.index.set_ef(knob)
        return self.index.knn_query(Q, k=K, num_threads=1)[0]


class RawFaiss:
    def __init__(self, factory, knob_name, seed):
        self.factory, self.knob_name, self.seed = factory, knob_name, seed

    def build(self, X):
        import faiss

        self.index = faiss.index_factory(X.shape[1], self.factory, faiss.METRIC_L2)
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.cp.seed = self.seed
            self.index.train(X)
        self.index.add(X)

    def query(self, Q, knob):
        import faiss

        faiss.ParameterSpace().set_index_parameter(self.index, self.knob_name, knob)
        return self.index.search(Q, K)[1]


def setups(n):
    """(name, wrapper, raw, knob parameter, knob values) with identical parameters."""
    nlist = 1024 if n >= 40000 else max(1, n // 39)
    return [
        ("annoy", AnnoyIndex(n_neighbors=K, n_trees=20, random_state=0), RawAnnoy(20, 0),
         "search_k", [200, 400, 800, 1600, 3000, 10000]),
        ("nmslib-hnsw", NMSLibIndex(n_neighbors=K, M=16, ef_construction=100), RawNMSLib(16, 100),
         "ef_search", [10, 12, 15, 20, 30, 40, 80, 160]),
        ("hnswlib", HNSWIndex(n_neighbors=K, M=16, ef_construction=100, random_state=0),
         RawHNSW(16, 100, 0), "ef_search", [10, 12, 15, 20, 30, 40, 80, 160]),
        ("faiss-HNSW32", FaissIndex(n_neighbors=K, factory="HNSW32"), RawFaiss("HNSW32", "efSearch", 0),
         "ef_search", [10, 12, 15, 20, 30, 40, 80, 160]),
        (f"faiss-IVF{nlist},Flat", FaissIndex(n_neighbors=K, factory=f"IVF{nlist},Flat", random_state=0),
         RawFaiss(f"IVF{nlist},Flat", "nprobe", 0), "nprobe", [1, 2, 3, 4, 6, 8, 16, 64]),
    ]


# faiss factories of the refine sweep whose candidates come from a reduced
# dimension (PCA): they rely on the data's low intrinsic dimension
REDUCED = ("PCA",)


def refine_setups(n):
    """(name, index, knob, knob values, refine values) of the re-ranking sweep."""
    nlist = 1024 if n >= 40000 else max(1, n // 39)
    half = 512 if n >= 20000 else max(1, n // 39)
    small = 256 if n >= 10000 else max(1, n // 39)

    def faiss_ivf(factory):
        return FaissIndex(n_neighbors=K, factory=factory, random_state=0)

    setups = [
        ("annoy", AnnoyIndex(n_neighbors=K, n_trees=20, random_state=0), "search_k",
         [800, 1600, 3000, 10000], [None, 2]),
        ("hnswlib", HNSWIndex(n_neighbors=K, M=16, ef_construction=100, random_state=0),
         "ef_search", [10, 12, 15, 20, 40, 80, 160, 320], [None, 2, 3]),
        ("faiss-HNSW32", FaissIndex(n_neighbors=K, factory="HNSW32"), "ef_search",
         [10, 16, 32, 64, 128, 256], [None, 2]),
        (f"faiss-IVF{nlist},Flat", faiss_ivf(f"IVF{nlist},Flat"), "nprobe",
         [3, 4, 6, 8, 12, 16, 20, 24, 32], [None]),
        (f"faiss-IVF{half},Flat", faiss_ivf(f"IVF{half},Flat"), "nprobe",
         [2, 3, 4, 6, 8, 12, 16], [None]),
        (f"faiss-IVF{nlist},PQ32x4fs", faiss_ivf(f"IVF{nlist},PQ32x4fs"), "nprobe",
         [4, 8, 16, 32], [None, 10, 20]),
        (f"faiss-IVF{nlist},PQ64x4fs", faiss_ivf(f"IVF{nlist},PQ64x4fs"), "nprobe",
         [4, 6, 8, 16, 24, 48], [None, 3, 5, 10, 20]),
        # one dimension per 4-bit sub-quantizer: the most accurate fast-scan codes
        (f"faiss-IVF{nlist},PQ128x4fs", faiss_ivf(f"IVF{nlist},PQ128x4fs"), "nprobe",
         [3, 4, 6, 8, 12, 16, 20, 24, 32], [None, 2, 3]),
        (f"faiss-IVF{half},PQ128x4fs", faiss_ivf(f"IVF{half},PQ128x4fs"), "nprobe",
         [2, 3, 4, 6, 8, 12, 16, 20], [None, 2, 3, 4]),
        (f"faiss-IVF{small},PQ128x4fs", faiss_ivf(f"IVF{small},PQ128x4fs"), "nprobe",
         [2, 3, 4, 6, 8, 12], [None, 2, 3]),
        (f"faiss-PCA32,IVF{small},PQ32x4fs", faiss_ivf(f"PCA32,IVF{small},PQ32x4fs"), "nprobe",
         [2, 3, 4, 6, 8, 12, 16], [None, 3, 5, 10]),
    ]
    return list({setup[0]: setup for setup in setups}.values())  # small n: same nlist


class RawRefine:
    """The raw faiss counterpart of a FaissIndex: its own native index searched
    directly, re-ranked by faiss's ``IndexRefineFlat`` (``k_factor = refine``)
    over a copy of the same float32 rows."""

    def __init__(self, index):
        import faiss

        self.native = index._index
        self.refined = faiss.IndexRefineFlat(self.native, faiss.swig_ptr(index._fit_X))

    def query(self, Q, refine):
        if refine is None:
            return self.native.search(Q, K)[1]
        self.refined.k_factor = refine
        return self.refined.search(Q, K)[1]


def run_refine(X, query_sets, repeats, log, quick=False, only=None):
    """recall@10 and q/s of every index with and without ``refine``, per query set.

    faiss indexes are measured against raw faiss on the same native index
    (interleaved: wrapper, raw, wrapper, raw...), which shows skfindkit's
    cost on top of the backend at the fastest settings.
    """
    log(f"== refine: {X.shape[0]} x {X.shape[1]}")
    refs, truth = {}, {}
    from sklearn.neighbors import NearestNeighbors

    with threadpool_limits(1):
        nn = NearestNeighbors(n_neighbors=K, algorithm="brute", n_jobs=1).fit(X)
        exact = ExactIndex(n_neighbors=K, n_jobs=1).fit(X)
        for qname, Q in query_sets.items():
            t_sk, (_, sk_ind) = best_of(lambda: nn.kneighbors(Q), repeats)
            truth[qname] = exact.kneighbors(Q, return_distance=False)
            refs[qname] = len(Q) / t_sk
            log(f"  sklearn brute ({qname}): {refs[qname]:.0f} q/s, "
                f"recall {recall_at_k(truth[qname], sk_ind):.3f}")
    rows = []
    for label, index, knob, values, refines in refine_setups(len(X)):
        if only and not any(name in label for name in only):
            continue
        if quick:
            values, refines = values[::2], refines[:3]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            index.set_params(n_jobs=1).fit(X)
            build = time.perf_counter() - t
            raw = RawRefine(index) if isinstance(index, FaissIndex) else None
            for value in values:
                for refine in refines:
                    index.set_params(**{knob: value, "refine": refine})
                    for qname, Q in query_sets.items():
                        tw, tr, ind = np.inf, np.inf, None
                        for _ in range(repeats):  # interleaved: both see the same load
                            t = time.perf_counter()
                            ind = index.kneighbors(Q, return_distance=False)
                            tw = min(tw, time.perf_counter() - t)
                            if raw is not None:
                                t = time.perf_counter()
                                raw.query(Q, refine)
                                tr = min(tr, time.perf_counter() - t)
                        row = {"index": label, "knob": f"{knob}={value}", "refine": refine,
                               "queries": qname, "recall": recall_at_k(truth[qname], ind),
                               "qps": len(Q) / tw, "raw_qps": len(Q) / tr if raw else None,
                               "build": build}
                        rows.append(row)
                        log(f"  {label:28s} {row['knob']:14s} refine={refine!s:5s} "
                            f"{qname:20s} recall {row['recall']:.3f} q/s {row['qps']:8.0f} "
                            f"({row['qps'] / refs[qname]:.1f}x sklearn)"
                            + (f" raw {row['raw_qps']:8.0f}" if raw else ""))
            del raw
    return {"shape": X.shape, "refs": refs, "rows": rows, "n_queries": len(Q)}


def _best_cell(best, sk_qps):
    return (f"{best['qps']:.0f} ({best['knob']}, refine={best['refine']}, "
            f"recall {best['recall']:.3f}) | {best['qps'] / sk_qps:.1f}x" if best else "n/a | n/a")


def _raw_ratio(point):
    return f"{point['qps'] / point['raw_qps']:.2f}" if point and point["raw_qps"] else "n/a"


def best_configurations(res):
    """Markdown table: the fastest configuration at recall@10 >= 0.95 per query set."""
    lines = ["| queries | sklearn brute q/s | best configuration (recall@10 >= 0.95) | recall | "
             "q/s | speed-up vs sklearn | wrapper/raw faiss | best without dimension "
             "reduction | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for qname, sk_qps in res["refs"].items():
        rows = [r for r in res["rows"] if r["queries"] == qname]
        best = best_at(rows, 0.95)
        plain = best_at([r for r in rows if not r["index"].startswith(
            tuple(f"faiss-{p}" for p in REDUCED))], 0.95)
        if best is None:
            lines.append(f"| {qname} | {sk_qps:.0f} | none reaches 0.95 | | | | | | |")
            continue
        lines.append(
            f"| {qname} | {sk_qps:.0f} | {_config(best)} | {best['recall']:.3f} | "
            f"{best['qps']:.0f} | **{best['qps'] / sk_qps:.1f}x** | {_raw_ratio(best)} | "
            + (f"{_config(plain)}, recall {plain['recall']:.3f}, {plain['qps']:.0f} q/s | "
               f"**{plain['qps'] / sk_qps:.1f}x** |" if plain else "none | |"))
    return lines


def _config(row):
    """The row's configuration as skfindkit code."""
    label = row["index"]
    knob, value = row["knob"].split("=")
    refine = f", refine={row['refine']}" if row["refine"] is not None else ""
    if label.startswith("faiss-"):
        return f'`FaissIndex(factory="{label[6:]}", {knob}={value}{refine})`'
    return f"`{label}` ({knob}={value}{refine})"


def refine_report(res):
    n, d = res["shape"]
    lines = [f"## Exact re-ranking (`refine`) on (a) ({n} x {d}, {res['n_queries']} queries "
             "per set)", "",
             "`refine=r` fetches `r * 10` candidates from the native index and re-ranks them "
             "by exact distance over the stored float32 data; `refine=None` is the native "
             "ranking. Out-of-distribution queries come from 200 other clusters in another "
             "16-dimensional subspace (the generator with another seed). Speed-ups are "
             "against scikit-learn's brute force (one thread) measured in the same run on "
             "the same query set. *wrapper/raw* compares a FaissIndex with raw faiss on the "
             "same native index (`index.search`, or `IndexRefineFlat` with `k_factor = "
             "refine` over a copy of the same rows), interleaved.", ""]
    for qname, sk_qps in res["refs"].items():
        rows = [r for r in res["rows"] if r["queries"] == qname]
        lines += [f"### {qname} queries: sklearn brute force {sk_qps:.0f} q/s", "",
                  "| index | best q/s at recall >= 0.95 without refine | speed-up | "
                  "best q/s at recall >= 0.95 with refine | speed-up | wrapper/raw there |",
                  "|---|---|---|---|---|---|"]
        for label in dict.fromkeys(r["index"] for r in rows):
            bests = [best_at([r for r in rows if r["index"] == label
                              and (r["refine"] is not None) == with_refine], 0.95)
                     for with_refine in (False, True)]
            lines.append(f"| {label} | " + " | ".join(_best_cell(b, sk_qps) for b in bests)
                         + f" | {_raw_ratio(bests[1] or bests[0])} |")
        lines += ["", "<details><summary>All points</summary>", "",
                  "| index | knob | refine | recall | q/s | raw faiss q/s | wrapper/raw |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['index']} | {r['knob']} | {r['refine']} | {r['recall']:.3f} | "
                  f"{r['qps']:.0f} | {r['raw_qps'] or float('nan'):.0f} | {_raw_ratio(r)} |"
                  for r in rows]
        lines += ["", "</details>", ""]
    return lines


def native_size(payload):
    """Bytes of a backend's native state: bytes, or a dict of arrays (hnswlib)."""
    if isinstance(payload, dict):
        return sum(np.asarray(v).nbytes for v in payload.values())
    return len(payload)


def run_dataset(name, X, Q, repeats, log):
    log(f"== {name}: {X.shape[0]} x {X.shape[1]}, {len(Q)} queries")
    rows, curves = [], {}
    with threadpool_limits(1):
        exact = ExactIndex(n_neighbors=K, n_jobs=1).fit(X)
        t_exact, (_, true) = best_of(lambda: exact.kneighbors(Q), repeats)
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=K, algorithm="brute", n_jobs=1).fit(X)
        t_sk, (_, sk_ind) = best_of(lambda: nn.kneighbors(Q), repeats)
    refs = {
        "ExactIndex": (len(Q) / t_exact, recall_at_k(true, exact.kneighbors(Q)[1])),
        "sklearn brute": (len(Q) / t_sk, recall_at_k(true, sk_ind)),
    }
    log(f"  ExactIndex {refs['ExactIndex'][0]:.0f} q/s, sklearn brute {refs['sklearn brute'][0]:.0f} q/s")
    for label, wrapper, raw, knob, values in setups(len(X)):
        t_w, t_r = np.inf, np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(2):  # interleaved builds, best of two
                t = time.perf_counter()
                wrapper.set_params(n_jobs=1).fit(X)
                t_w = min(t_w, time.perf_counter() - t)
                t = time.perf_counter()
                raw.build(X)
                t_r = min(t_r, time.perf_counter() - t)
        if getattr(raw, "share_native", False):
            # no seed: two builds give two different graphs, whose speeds
            # differ by more than the wrapper's overhead; query the same one
            raw.index = wrapper._index
        native = native_size(wrapper._serialize())
        points = []
        for value in values:
            wrapper.set_params(**{knob: value})
            tw, tr = np.inf, np.inf
            for _ in range(repeats):  # interleaved: both see the same load
                t = time.perf_counter()
                w_ind = wrapper.kneighbors(Q, return_distance=False)
                tw = min(tw, time.perf_counter() - t)
                t = time.perf_counter()
                r_ind = raw.query(Q, value)
                tr = min(tr, time.perf_counter() - t)
            point = {
                "knob": f"{knob}={value}",
                "recall": recall_at_k(true, w_ind),
                "raw_recall": recall_at_k(true, r_ind),
                "qps": len(Q) / tw,
                "raw_qps": len(Q) / tr,
                "identical": float(np.mean(np.sort(w_ind, 1) == np.sort(r_ind, 1))),
            }
            points.append(point)
            log(f"  {label:22s} {point['knob']:16s} recall {point['recall']:.3f} "
                f"q/s {point['qps']:8.0f} raw {point['raw_qps']:8.0f} "
                f"ratio {point['qps'] / point['raw_qps']:.3f} identical {point['identical']:.3f}")
        curves[label] = points
        rows.append({
            "index": label, "build": t_w, "raw_build": t_r, "native_bytes": native,
            "data_bytes": wrapper.n_samples_fit_ * wrapper.n_features_in_ * 4, "points": points,
        })
        log(f"  {label}: build {t_w:.2f}s raw {t_r:.2f}s ({t_w / t_r:.3f}x), native {native / 2**20:.1f} MiB")
    return {"name": name, "shape": X.shape, "n_queries": len(Q), "refs": refs, "rows": rows}


# --------------------------------------------------------------- report
def extra_per_call(points, n_queries):
    """Median over the sweep of the wrapper's extra time per ``kneighbors`` call, in us."""
    return float(np.median([n_queries * (1 / p["qps"] - 1 / p["raw_qps"]) * 1e6
                            for p in points]))


def best_at(points, target, key="qps", recall="recall"):
    ok = [p for p in points if p[recall] >= target]
    return max(ok, key=lambda p: p[key]) if ok else None


HISTORY = "# Earlier runs"
#: sections of ann.md recorded from other benchmarks (bench_memory.py): kept current
KEPT_SECTIONS = ("## Memory without the float32 copy",)


def with_history(lines, path):
    """``lines`` followed by the previous report of ``path`` (its headings one level
    down) and the earlier runs it kept, so that a re-run keeps the history."""
    if not os.path.exists(path):
        return lines
    with open(path) as fh:
        old = fh.read()
    current, _, history = old.partition(HISTORY + "\n")
    kept, demoted, keep = [], [], False
    for line in current.splitlines():
        if line.startswith("## "):  # sections other scripts record here stay current
            keep = line.startswith(KEPT_SECTIONS)
        if keep:
            kept.append(line)
        else:
            demoted.append("#" + line if line.startswith("#") else line)
    return [*lines, "", *kept, "", HISTORY, "", *demoted, "", *history.splitlines()]


def write_report(path, results, command, elapsed, extra=(), top=()):
    lines = [
        "# Approximate indexes: recall@10 vs queries/s",
        "",
        f"Command: `{command}` ({elapsed / 60:.1f} min).  ",
        f"Machine: {machine_text(*PACKAGES)} (above ~1 per core, other jobs were running).  ",
        "All timings single thread (index `n_jobs=1`, raw backends `num_threads=1` / "
        "`omp_set_num_threads(1)`, BLAS limited to 1 thread for the exact references); "
        "query timings are the best of interleaved repeats (wrapper, raw, wrapper, raw, ...) "
        "on a 2-core machine shared with other jobs, so ratios are the meaningful numbers. "
        "Builds are timed twice each, interleaved (wrapper, raw, wrapper, raw), best of two.",
        "",
        "nmslib's PyPI wheel is built without SIMD (it prints so at import): its absolute "
        "speed understates nmslib built from source; the wrapper/raw ratio is unaffected.",
        "",
    ]
    for res in results:
        n, d = res["shape"]
        sk_qps = res["refs"]["sklearn brute"][0]
        lines += [f"## {res['name']} ({n} x {d}, {res['n_queries']} queries)", "",
                  f"References: ExactIndex {res['refs']['ExactIndex'][0]:.0f} q/s, "
                  f"sklearn brute force {sk_qps:.0f} q/s (both recall 1.0).", "",
                  "| index | build s (raw) | build ratio | native MiB (+ stored data MiB) | "
                  "query ratio wrapper/raw (min-max over sweep) | extra us per call (median) | "
                  "identical ids | best q/s at recall >= 0.95 | speed-up vs sklearn |",
                  "|---|---|---|---|---|---|---|---|---|"]
        best_overall = None
        for row in res["rows"]:
            ratios = [p["qps"] / p["raw_qps"] for p in row["points"]]
            best = best_at(row["points"], 0.95)
            if best and (best_overall is None or best["qps"] > best_overall[1]["qps"]):
                best_overall = (row["index"], best)
            lines.append(
                f"| {row['index']} | {row['build']:.2f} ({row['raw_build']:.2f}) | "
                f"{row['build'] / row['raw_build']:.3f} | {row['native_bytes'] / 2**20:.1f} "
                f"(+{row['data_bytes'] / 2**20:.1f}) | {np.median(ratios):.3f} "
                f"({min(ratios):.3f}-{max(ratios):.3f}) | "
                f"{extra_per_call(row['points'], res['n_queries']):.0f} | "
                f"{min(p['identical'] for p in row['points']):.3f} | "
                + (f"{best['qps']:.0f} ({best['knob']}, recall {best['recall']:.3f}) | "
                   f"{best['qps'] / sk_qps:.1f}x |" if best else "n/a | n/a |"))
        if best_overall:
            lines += ["", f"**Best index at recall@10 >= 0.95: {best_overall[0]} "
                      f"({best_overall[1]['knob']}), {best_overall[1]['qps']:.0f} q/s = "
                      f"{best_overall[1]['qps'] / sk_qps:.1f}x sklearn brute force.**"]
        lines += ["", "<details><summary>All sweep points</summary>", "",
                  "| index | knob | recall | q/s | raw recall | raw q/s | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for row in res["rows"]:
            for p in row["points"]:
                lines.append(f"| {row['index']} | {p['knob']} | {p['recall']:.3f} | {p['qps']:.0f} | "
                             f"{p['raw_recall']:.3f} | {p['raw_qps']:.0f} | {p['qps'] / p['raw_qps']:.3f} |")
        lines += ["", "</details>", ""]
    lines += ["Columns: *build ratio* = wrapper fit time / raw build time (the wrapper also "
              "validates and copies the data to float32); *native MiB* = the backend's serialized "
              "index; the wrapper additionally stores the prepared data (needed for "
              "`kneighbors(None)`, rebuilds and exact completion); *identical ids* = fraction of "
              "returned ids equal between wrapper and raw backend at the worst sweep point "
              "(nmslib has no seed: its raw queries run on the wrapper's own graph, so the query ratio measures the wrapper alone; build times compare two separate builds).", "",
              "*Extra us per call* = the wrapper's time minus the raw call's, median over the "
              "sweep. It is a small fixed cost per `kneighbors` call plus a cost per query: the "
              "finite check of the queries, the lookup of an indexed row equal to each query (the "
              "item-itself rule: a 64-bit hash per query and a binary search), converting "
              "ids/distances to true units and checking their order (well-formed float arrays "
              "skip scikit-learn's slower `validate_data`). Measured apart on digits with "
              "hnswlib: about 85 us per call of 200 queries (check 5, item-itself lookup 22, "
              "conversions 26, lock 3); on (a) about 0.5-1 us per query. Invisible where a "
              "batch of 1000 queries takes tens of milliseconds, a visible fraction on (b) when "
              "a whole batch is answered in well under a millisecond. Ratios "
              "above 1 and isolated dips are timing noise from other jobs on the 2 shared cores. "
              "Where raw faiss IVF with a small `nprobe` returns fewer than 10 ids (-1 padding) "
              "for some queries, the wrapper completes those rows by exact search and warns, "
              "which costs time the raw call does not spend (e.g. (c) at nprobe=1).", "",
              "![recall vs queries/s](ann_recall_qps.png)", "", *extra]
    at = next(i for i, line in enumerate(lines) if line.startswith("All timings"))
    lines[at:at] = ["", *top]
    lines = with_history(lines, path)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(path, results, refine=None, dpi=110):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_refine = len(refine["refs"]) if refine else 0
    fig, axes = plt.subplots(1, len(results) + n_refine,
                             figsize=(5.5 * (len(results) + n_refine), 4.8))
    for ax, qname in zip(np.atleast_1d(axes)[len(results):], refine["refs"] if refine else ()):
        plot_refine(ax, refine, qname)
    for ax, res in zip(np.atleast_1d(axes), results):
        for i, row in enumerate(res["rows"]):
            pts, color = row["points"], f"C{i}"
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], "o-", color=color,
                    label=f"{row['index']} (skfindkit)")
            ax.plot([p["raw_recall"] for p in pts], [p["raw_qps"] for p in pts], "x--",
                    color=color, alpha=0.6, label=f"{row['index']} (raw)")
        for j, (ref, (qps, rec)) in enumerate(res["refs"].items()):
            ax.plot([rec], [qps], "s*"[j], color="k", markersize=9, label=ref)
        ax.set(xscale="linear", yscale="log", xlabel="recall@10", ylabel="queries/s (1 thread)",
               title=f"{res['name']} {res['shape'][0]}x{res['shape'][1]}")
        ax.axvline(0.95, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)


def plt_colors(n):
    """n distinct colours (matplotlib's cycle has 10)."""
    import matplotlib.pyplot as plt

    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the 10 dark tab20 colours, then the light
    return [f"C{i}" for i in range(n)] if n <= 10 else [plt.cm.tab20(order[i % 20])
                                                         for i in range(n)]


def plot_refine(ax, res, qname):
    """Pareto front (best q/s at each recall) of every index of the refine sweep."""
    rows = [r for r in res["rows"] if r["queries"] == qname]
    labels = list(dict.fromkeys(r["index"] for r in rows))
    colors = plt_colors(len(labels))
    for i, label in enumerate(labels):
        pts = sorted(((r["recall"], r["qps"]) for r in rows if r["index"] == label),
                     key=lambda p: -p[0])
        front, top = [], 0.0
        for recall, qps in pts:  # from high recall down: keep the points faster than all before
            if qps > top:
                front.append((recall, qps))
                top = qps
        ax.plot(*zip(*front), "o-", color=colors[i], markersize=3, label=label)
    ax.plot([1.0], [res["refs"][qname]], "*", color="k", markersize=9, label="sklearn brute")
    ax.set(yscale="log", xlabel="recall@10", ylabel="queries/s (1 thread)", xlim=(0.5, 1.005),
           title=f"refine sweep, {qname} queries (Pareto fronts)")
    ax.axvline(0.95, color="grey", lw=0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def main(argv=None):
    options = parser(__doc__, repeats=5)
    options.add_argument("--n", type=int, default=100_000, help="items of the clustered dataset")
    options.add_argument("--queries", type=int, default=1000)
    options.add_argument("--patches", type=int, default=20_000,
                         help="items of the patch-features dataset (c)")
    options.add_argument("--dump", help="also pickle the raw measurements to this path")
    options.add_argument("--only-refine", action="store_true",
                         help="run only the refine / out-of-distribution part")
    options.add_argument("--refine-indexes", nargs="*",
                         help="names (substrings) of the indexes of the refine sweep to run")
    args = parse(options, argv, n=1000, queries=50, patches=1000)
    import faiss

    faiss.omp_set_num_threads(1)  # raw faiss single-threaded (the wrapper restores this value)
    start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    X_a, Q_a = split(clustered(args.n + args.queries), args.queries)
    Q_ood = clustered(args.queries, seed=1)  # other clusters, other subspace
    refine = run_refine(X_a, {"in-distribution": Q_a, "out-of-distribution": Q_ood},
                        args.repeats, log, quick=args.quick, only=args.refine_indexes)
    command = "python benchmarks/bench_ann.py " + " ".join(sys.argv[1:] if argv is None else argv)
    path = results_path(args, "ann_refine.md" if args.only_refine else "ann.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.only_refine:
        path.write_text("\n".join([f"Command: `{command.strip()}`.  ",
                                   f"Machine: {machine_text(*PACKAGES)}.", "",
                                   *best_configurations(refine), "", *refine_report(refine)]))
        print(f"wrote {path}")
        return
    datasets = [
        ("(a) clustered", (X_a, Q_a)),
        ("(b) digits", split(digits(), 200)),
        ("(c) PCA patch features",
         split(patch_features(args.patches), min(1000, args.patches // 4))),
    ]
    results = [run_dataset(name, X, Q, args.repeats, log) for name, (X, Q) in datasets]
    top = ["## Best configurations at recall@10 >= 0.95 on (a)", "",
           *best_configurations(refine), "",
           "From the refine sweep below (one thread each, sklearn measured in the same run on "
           "the same queries). *Dimension reduction*: factories starting with `PCA` search "
           "32 principal components of the data and re-rank exactly in the 128 dimensions; "
           "they pay off because this data (like many embeddings) has a low intrinsic "
           "dimension (16 here), and the right-hand column gives the best without it.", ""]
    write_report(path, results, command.strip(), time.perf_counter() - start,
                 extra=refine_report(refine), top=top)
    plot(path.with_name("ann_recall_qps.png"), results, refine, dpi=30 if args.quick else 110)
    print(f"wrote {path} and its plot")
    if args.dump:
        with open(args.dump, "wb") as fh:
            pickle.dump(results, fh)


if __name__ == "__main__":
    main()
