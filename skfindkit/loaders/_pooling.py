"""Pooling a (n_frames, n_features) sequence into one fixed-length vector."""

import numpy as np

__all__ = ["POOLING_STATS", "check_pooling", "pool_frames", "pooled_names"]

POOLING_STATS = {
    "mean": np.mean,
    "std": np.std,
    "max": np.max,
    "min": np.min,
    "median": np.median,
}


def check_pooling(pooling, n_segments, owner):
    """Return ``pooling`` as a tuple of statistic names, or raise naming the parameter."""
    stats = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    bad = [s for s in stats if s not in POOLING_STATS]
    if not stats or bad or len(set(stats)) != len(stats):
        raise ValueError(
            f"The 'pooling' parameter of {owner} must be one of {sorted(POOLING_STATS)} "
            f"or a sequence of distinct ones; got {pooling!r}."
        )
    if not isinstance(n_segments, (int, np.integer)) or n_segments < 1:
        raise ValueError(
            f"The 'n_segments' parameter of {owner} must be an int >= 1; "
            f"got {n_segments!r}."
        )
    return stats


def pool_frames(frames, stats, n_segments):
    """Statistics of ``n_segments`` equal time segments, concatenated.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, n_features)
    stats : tuple of str
        Keys of :data:`POOLING_STATS`.
    n_segments : int
        Number of equal time segments (1: whole clip).

    Returns
    -------
    vector : ndarray of shape (n_segments * len(stats) * n_features,)
        Ordered segment-major, then statistic, then feature.
    """
    if frames.shape[0] < n_segments:
        raise ValueError(
            f"it has {frames.shape[0]} frames, fewer than n_segments={n_segments}"
        )
    segments = [frames] if n_segments == 1 else np.array_split(frames, n_segments, axis=0)
    parts = [POOLING_STATS[stat](segment, axis=0) for segment in segments for stat in stats]
    return np.concatenate(parts)


def pooled_names(feature_names, stats, n_segments):
    """Names matching :func:`pool_frames`'s order: ``<feature>_<stat>[_seg<k>]``."""
    return [
        f"{name}_{stat}" + (f"_seg{k}" if n_segments > 1 else "")
        for k in range(n_segments)
        for stat in stats
        for name in feature_names
    ]
