"""Pooling a (n_frames, n_features) sequence into one fixed-length vector."""

import numpy as np

__all__ = ["POOLING_STATS", "check_pooling", "interpolate_frames", "pool_frames", "pooled_names"]

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

    A sequence with fewer frames than segments (a short clip) is first
    resampled to ``n_segments`` frames by linear interpolation between its
    frames at the segments' centres, so every segment holds one frame: its
    ``mean``, ``max``, ``min`` and ``median`` are that frame and its ``std``
    is 0. A one-frame sequence repeats its frame in every segment.

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
    n_frames = frames.shape[0]
    if n_frames == 0:
        raise ValueError("it has no frames to pool")
    if n_frames < n_segments:
        frames = interpolate_frames(frames, n_segments)
    segments = [frames] if n_segments == 1 else np.array_split(frames, n_segments, axis=0)
    parts = [POOLING_STATS[stat](segment, axis=0) for segment in segments for stat in stats]
    return np.concatenate(parts)


def interpolate_frames(frames, n_out):
    """``n_out`` frames linearly interpolated at the centres of equal time segments.

    Frame ``i`` of ``n`` covers ``[i / n, (i + 1) / n)`` of the clip and sits
    at its centre; output frame ``k`` is read at ``(k + 0.5) / n_out``
    (clamped to the first and last frame centres).
    """
    n_frames = frames.shape[0]
    where = (np.arange(n_out) + 0.5) * n_frames / n_out - 0.5  # in frame indices
    where = np.clip(where, 0, n_frames - 1)
    low = np.floor(where).astype(int)
    high = np.minimum(low + 1, n_frames - 1)
    weight = (where - low)[:, np.newaxis]
    return (1 - weight) * frames[low] + weight * frames[high]


def pooled_names(feature_names, stats, n_segments):
    """Names matching :func:`pool_frames`'s order: ``<feature>_<stat>[_seg<k>]``."""
    return [
        f"{name}_{stat}" + (f"_seg{k}" if n_segments > 1 else "")
        for k in range(n_segments)
        for stat in stats
        for name in feature_names
    ]
