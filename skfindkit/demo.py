"""``skfindkit demo``: a digits image retrieval system, end to end, offline.

It builds an image retrieval system on scikit-learn's digits (shipped with
scikit-learn, so it runs offline): a loader, a feature extractor and an index
in one Pipeline, grid-searched on precision@k, saved in skfindkit's safe
format (``digits_retrieval.skfk``, which runs no code when loaded), reloaded,
queried, and drawn as a query -> top-k gallery.

Each indexed digit is also written as ``digits/digit_NNNN.png`` and keyed by
that path (relative to the output folder), and a few held-out digits as
``queries/digit_NNNN.png``: ``skfindkit serve OUT/digits_retrieval.skfk``
shows the results as thumbnails, and the queries are files to upload.
"""

from pathlib import Path

import numpy as np

__all__ = ["run_demo"]


class _ProgressScorer:
    """Wrap a scorer to advance a progress bar once per scored fold."""

    def __init__(self, scorer, bar):
        self.scorer, self.bar = scorer, bar

    def __call__(self, estimator, X, y=None):
        score = self.scorer(estimator, X, y)
        self.bar.update(1)
        return score


def _digits_as_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    return images, digits.target


MODEL_NAME = "digits_retrieval.skfk"


def _write_pngs(folder, images, ids):
    """Each image as ``folder/digit_NNNN.png``; their paths.

    Written into a new sibling folder that then replaces ``folder`` (renames),
    so a run never leaves half-written files in place, without one ``fsync``
    per file (1437 of them took ~7 s).
    """
    import shutil
    import tempfile

    from PIL import Image

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for i in ids:
            Image.fromarray(images[i]).save(staging / f"digit_{i:04d}.png", format="PNG")
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
            folder.rename(old / folder.name)
        staging.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [folder / f"digit_{i:04d}.png" for i in ids]


def run_demo(out_dir, k=10, n_queries=4, verbose=1, seed=0):
    """Grid-search, save, reload, query and plot a digits retrieval system.

    Parameters
    ----------
    out_dir : str or path-like
        Where the pipeline (``digits_retrieval.skfk``), the gallery
        (``digits_gallery.png``), the indexed digits (``digits/``) and the
        held-out queries (``queries/``) go.
    k : int, default=10
        Results per query; the grid search maximizes precision@k.
    n_queries : int, default=4
        Held-out queries shown and plotted.
    verbose : int, default=1
        Progress bar and tables when positive.
    seed : int, default=0
        Seed of the train/query split.

    Returns
    -------
    summary : dict
        ``best_params``, ``best_score``, ``test_precision``, ``model_path``,
        ``gallery_path`` and ``query_paths`` (the held-out query PNGs).
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.pipeline import Pipeline
    from tqdm.auto import tqdm

    from . import ExactIndex, ImageLoader, SklearnFeatureExtractor, search
    from .metrics import make_retrieval_scorer, precision_at_k
    from .plotting import plot_retrieval_gallery
    from ._app.pipeline_files import load_pipeline, save_pipeline
    from .search import attach_keys

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, labels = _digits_as_images()
    ids = np.arange(len(images))
    train, test = train_test_split(ids, test_size=0.2, random_state=seed, stratify=labels)

    pipeline = Pipeline([
        ("loader", ImageLoader(size=(8, 8), color_mode="grayscale", flatten=True)),
        ("extractor", SklearnFeatureExtractor(PCA(random_state=seed))),
        ("index", ExactIndex(n_neighbors=k)),
    ])
    grid = {
        "loader__size": [(8, 8), (16, 16)],
        "extractor__estimator": [PCA(8, random_state=seed), PCA(32, random_state=seed),
                                 LinearDiscriminantAnalysis(n_components=9)],
        "index__metric": ["euclidean", "cosine"],
    }
    n_fits = 3 * int(np.prod([len(v) for v in grid.values()]))
    with tqdm(total=n_fits, desc="grid search (folds scored)", disable=not verbose) as bar:
        search_cv = GridSearchCV(
            pipeline, grid, cv=3,
            scoring=_ProgressScorer(make_retrieval_scorer("precision", k), bar),
        ).fit(images[train], labels[train])

    res = search_cv.cv_results_
    rows = sorted(zip(res["rank_test_score"], res["mean_test_score"], res["std_test_score"],
                      res["params"]), key=lambda r: r[0])
    if verbose:
        print(f"\n{'rank':>4}  {'P@' + str(k):>7}  {'std':>6}  configuration")
        for rank, mean, std, params in rows:
            print(f"{rank:>4}  {mean:7.4f}  {std:6.4f}  {_describe(params)}")

    # the indexed digits as files, keyed by their path relative to out_dir: what
    # `skfindkit serve` shows (its --items-dir defaults to the pipeline's folder)
    keys = [p.relative_to(out_dir).as_posix()
            for p in _write_pngs(out_dir / "digits", images, train)]
    query_paths = _write_pngs(out_dir / "queries", images, test[:n_queries])
    model_path = out_dir / MODEL_NAME
    save_pipeline(attach_keys(search_cv.best_estimator_, keys), model_path)  # safe format
    system = load_pipeline(model_path)
    test_precision = system.score(images[test], labels[test])
    if verbose:
        print(f"\nbest: {_describe(search_cv.best_params_)}  (cv P@{k} = "
              f"{search_cv.best_score_:.4f})")
        print(f"saved and reloaded {model_path}; held-out P@{k} = {test_precision:.4f}")

    queries = test[:n_queries]
    found = search(system, images[queries])
    hit_labels = labels[train][found.indices]
    if verbose:
        for q, row in zip(queries, found):
            top = ", ".join(f"{key} ({labels[_digit_id(key)]}) {d:.2f}"
                            for key, d in row[:5])
            print(f"query digit #{q} (label {labels[q]}): {top}, ...")
    gallery_path = out_dir / "digits_gallery.png"
    plot_retrieval_gallery(
        images[queries], images[train][found.indices], distances=found.distances,
        correct=hit_labels == labels[queries][:, None],
        query_titles=[f"query ({labels[q]})" for q in queries], path=gallery_path,
    )
    if verbose:
        print(f"gallery written to {gallery_path.resolve()}  (P@{k} of these queries: "
              f"{precision_at_k(labels[queries], hit_labels):.2f})")
        print(f"browse it: skfindkit serve {model_path}  (queries to upload: "
              f"{(out_dir / 'queries').resolve()})")
    return {"best_params": search_cv.best_params_, "best_score": search_cv.best_score_,
            "test_precision": test_precision, "model_path": model_path,
            "gallery_path": gallery_path, "query_paths": query_paths}


def _digit_id(key):
    """``"digits/digit_0042.png"`` -> 42."""
    return int(key.rsplit("_", 1)[1].split(".")[0])


def _describe(params):
    parts = []
    for key, value in params.items():
        name = key.split("__")[-1]
        parts.append(f"{name}={value!r}" if not hasattr(value, "get_params") else
                     f"{name}={type(value).__name__}({value.n_components})")
    return ", ".join(parts)
