"""How ``skfindkit query`` and ``skfindkit info`` show things: tables, JSON, CSV, galleries."""

import csv
import json
import os
import sys
import textwrap

import numpy as np

from .utils import final_index

__all__ = ["pipeline_info", "print_results", "write_gallery"]


def _rows(queries, result):
    for q, (query, ranked) in enumerate(zip(queries, result)):
        for rank, (key, distance) in enumerate(ranked, start=1):
            yield {"query": query, "rank": rank, "distance": float(distance), "file": str(key)}


def print_results(queries, result, fmt, file=None):
    """Print ranked results as ``table``, ``json`` or ``csv``."""
    file = file or sys.stdout
    if fmt == "json":
        json.dump(
            [{"query": q, "results": [{"rank": r, "distance": float(d), "file": str(key)}
                                      for r, (key, d) in enumerate(ranked, start=1)]}
             for q, ranked in zip(queries, result)],
            file, indent=2)
        file.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(file, fieldnames=["query", "rank", "distance", "file"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(_rows(queries, result))
    else:
        for query, ranked in zip(queries, result):
            print(f"# {query}", file=file)
            for rank, (key, distance) in enumerate(ranked, start=1):
                print(f"{rank}\t{distance:.6g}\t{key}", file=file)


# ------------------------------------------------------------------ gallery
_THUMB = (96, 96)
_SPEC = (64, 96)


def _thumbnail(path):
    from .loaders import ImageLoader

    return ImageLoader(size=_THUMB).transform([path])[0]


def _spectrogram(path):
    """Log-mel spectrogram resampled to a fixed picture size (low frequencies down)."""
    import librosa

    from .loaders._audio_io import read_audio

    y = read_audio(path, sampling_rate=22050)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050, n_mels=_SPEC[0]),
                              ref=np.max, top_db=80)
    cols = np.linspace(0, mel.shape[1] - 1, _SPEC[1])
    picture = np.array([np.interp(cols, np.arange(mel.shape[1]), row) for row in mel])
    return (picture[::-1] + 80) / 80  # [0, 1], high frequencies at the top


def _snippet(path, width=26, lines=7):
    with open(path, "rb") as handle:
        text = handle.read(2000).decode("utf-8", errors="replace")
    wrapped = textwrap.wrap(" ".join(text.split()), width=width)
    return "\n".join(wrapped[:lines]) + ("\n..." if len(wrapped) > lines else "")


def write_gallery(path, kind, queries, result):
    """Query -> top-k picture: thumbnails, spectrograms or text snippets."""
    from .plotting import plot_retrieval_gallery

    draw = {"image": _thumbnail, "audio": _spectrogram, "text": _snippet}[kind]
    cache = {}

    def cell(item):
        if item not in cache:
            try:
                cache[item] = draw(item)
            except Exception as exc:  # an indexed file moved or changed since: say so
                cache[item] = f"cannot show\n{os.path.basename(item)}:\n{type(exc).__name__}"
        return cache[item]

    keys = [[str(k) for k in row] for row in result.keys]
    plot_retrieval_gallery(
        [cell(q) for q in queries], [[cell(k) for k in row] for row in keys],
        distances=result.distances,
        query_titles=[_short(q) for q in queries],
        neighbor_titles=[[_short(k) for k in row] for row in keys],
        cmap="magma" if kind == "audio" else "gray_r", path=path,
    )


def _short(path, width=18):
    name = os.path.basename(path)
    return name if len(name) <= width else name[: width - 3] + "..."


# --------------------------------------------------------------------- info
def pipeline_info(pipeline, path, kind):
    """What a saved pipeline holds, as a dict of printable values."""
    from .io import file_kind

    index = final_index(pipeline)
    keys = getattr(index, "item_keys_", None)
    info = {
        "file": os.path.abspath(path),
        "file size": f"{os.path.getsize(path) / 2**20:.2f} MiB",
        "format": {"safe": "skfindkit safe format (runs no code when loaded)",
                   "pickle": "pickle/joblib (runs code when loaded: trusted files only)"}.get(
                       file_kind(path), "unknown"),
        "kind": kind,
        "steps": [f"{name}: {_compact(step)}" for name, step in pipeline.steps],
        "items": int(index.n_samples_fit_),
        "features": int(getattr(index, "n_features_in_", 0)),
        "metric": index.metric,
        "default k": index.n_neighbors,
    }
    if keys is not None:
        sample = [str(k) for k in keys[:3]] + (["..."] if len(keys) > 4 else []) + (
            [str(keys[-1])] if len(keys) > 3 else [])
        info["keys"] = sample
    return info


def _compact(estimator):
    text = " ".join(repr(estimator).split())
    return text if len(text) <= 160 else text[:157] + "..."
