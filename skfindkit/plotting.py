"""Plots people would rather look at than read: query -> top-k galleries."""

import os

import numpy as np

from .utils import import_optional

__all__ = ["plot_retrieval_gallery"]


def plot_retrieval_gallery(queries, neighbors, *, distances=None, correct=None,
                           query_titles=None, neighbor_titles=None, path=None, cmap="gray_r"):
    """Draw one row per query: the query image, then its retrieved images.

    Parameters
    ----------
    queries : sequence of images or str, length n_queries
        Query images (arrays of shape ``(h, w)`` or ``(h, w, c)``, e.g. an
        array of shape ``(n_queries, h, w)``); a str cell is drawn as text
        (a snippet of a document).
    neighbors : sequence of sequences of images or str, shape (n_queries, k)
        Retrieved items, nearest first (e.g. an array of shape
        ``(n_queries, k, h, w[, c])``).
    distances : array-like of shape (n_queries, k), default=None
        Shown under each retrieved image.
    correct : array-like of bool, shape (n_queries, k), default=None
        Frames relevant hits green and the others red.
    query_titles : list of str, default=None
        Titles of the query images.
    neighbor_titles : list of lists of str, default=None
        Names shown under each retrieved item (above it: its distance).
    path : str or path-like, default=None
        Where to save the PNG; the figure is returned either way.
    cmap : str, default="gray_r"
        Colormap for single-channel images.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Notes
    -----
    Needs matplotlib: ``pip install 'skfindkit[plot]'``.
    """
    matplotlib = import_optional("matplotlib", "plot")
    if path is not None:
        matplotlib.use("Agg", force=False)
    plt = import_optional("matplotlib.pyplot", "plot", package="matplotlib")

    n_q, k = len(neighbors), len(neighbors[0])
    height = 1.9 if neighbor_titles is not None else 1.6
    fig, axes = plt.subplots(n_q, k + 1, figsize=(1.4 * (k + 1), height * n_q), squeeze=False)
    for q in range(n_q):
        _show(axes[q, 0], queries[q], cmap)
        axes[q, 0].set_title(query_titles[q] if query_titles else "query", fontsize=8)
        for j in range(k):
            ax = axes[q, j + 1]
            _show(ax, neighbors[q][j], cmap)
            if distances is not None:
                ax.set_title(f"{distances[q][j]:.3g}", fontsize=7)
            if neighbor_titles is not None:
                ax.set_xlabel(neighbor_titles[q][j], fontsize=6)
            if correct is not None:
                color = "tab:green" if correct[q][j] else "tab:red"
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_edgecolor(color)
                    spine.set_linewidth(2.5)
    fig.suptitle("query  ->  nearest items (distance)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        from .io import atomic_write

        suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
        with atomic_write(path) as fh:  # never half a PNG in place of a good one
            fig.savefig(fh, dpi=110, format=suffix or "png")
        plt.close(fig)
    return fig


def _show(ax, image, cmap):
    if isinstance(image, str):  # a text snippet
        ax.text(0.03, 0.97, image, fontsize=4.5, va="top", ha="left", family="monospace",
                transform=ax.transAxes)
        image = np.ones((96, 96, 3))  # a white card
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap=cmap if image.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
