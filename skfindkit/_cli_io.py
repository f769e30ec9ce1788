"""What the ``skfindkit`` file commands share: file lists (skipped files counted),
output checks, loading a collection file by file (failures reported, never
indexed), and keeping native libraries' stderr chatter off the terminal.
Pipeline files are :mod:`skfindkit._app.pipeline_files`' (re-exported here).
"""

import contextlib
import json
import os
import re
import sys
import tempfile
import warnings

import numpy as np

from ._app.pipeline_files import (PIPELINE_SUFFIX, TRUST_PICKLE_HELP, load_pipeline,
                                  pipeline_file_kind, save_pipeline, wants_pickle)
from ._app.kinds import TEXT_ENDINGS, file_endings

__all__ = ["describe_skipped", "PIPELINE_SUFFIX", "TRUST_PICKLE_HELP", "check_output_path",
           "list_files", "load_pipeline", "load_rows", "pipeline_file_kind",
           "quiet_native_stderr", "save_pipeline", "wants_pickle", "write_json"]

# below this many files per worker, starting worker processes costs more than it saves
# (an 8-file folder took 2-3x longer with --n-jobs 2 than with one job)
MIN_FILES_PER_WORKER = 64


def list_files(paths, kind):
    """Files of ``kind`` in ``paths`` (files, or folders searched recursively), sorted.

    Returns ``(files, skipped)``: absolute paths, and ``{reason: count}`` of the
    files in the folders that are not of ``kind`` (by their ending) or hidden.
    Files named one by one are always taken.
    """
    endings = file_endings(kind)
    found, skipped = [], {}
    for path in paths:
        if os.path.isfile(path):
            found.append(os.path.abspath(path))
            continue
        if not os.path.isdir(path):
            raise FileNotFoundError(f"no such file or folder: {path!r}")
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if name.startswith("."):
                    reason = "hidden files"
                elif name.lower().endswith(endings):
                    found.append(os.path.abspath(os.path.join(root, name)))
                    continue
                else:
                    ending = os.path.splitext(name)[1].lower() or "without ending"
                    reason = f"{ending} (not {kind})"
                skipped[reason] = skipped.get(reason, 0) + 1
    if not found:
        what = (f"{kind} files (endings {KIND_HINTS[kind]})" if kind in KIND_HINTS
                else f"{kind} files")
        raise ValueError(f"no {what} found in " + ", ".join(repr(p) for p in paths)
                         + (f" ({describe_skipped(skipped)})" if skipped else ""))
    return found, skipped


KIND_HINTS = {"image": "that Pillow opens: .png, .jpg, .pgm, .tif, .webp...",
              "audio": "that libsndfile reads, and .mp3: .wav, .flac, .ogg, .aiff...",
              "text": ", ".join(TEXT_ENDINGS)}


def describe_skipped(skipped):
    """``{reason: count}`` as one phrase: "skipped 3 files: 2 not image files (.csv)..."."""
    total = sum(skipped.values())
    parts = [f"{count} {reason}" for reason, count in
             sorted(skipped.items(), key=lambda item: (-item[1], item[0]))[:6]]
    more = len(skipped) - len(parts)
    return (f"skipped {total} file{'s' * (total != 1)}: " + ", ".join(parts)
            + (f" and {more} other kinds" if more > 0 else ""))


def effective_jobs(n_jobs, n_files):
    """``n_jobs`` capped so that each worker gets ``MIN_FILES_PER_WORKER`` files."""
    if n_jobs is None or n_jobs == 1:
        return n_jobs
    from joblib import effective_n_jobs

    return max(1, min(effective_n_jobs(n_jobs), n_files // MIN_FILES_PER_WORKER))


# ----------------------------------------------------------------- output files
def check_output_path(path, *, overwrite_ok=True):
    """Refuse an output path that cannot be written, before any work is done."""
    path = os.fspath(path)
    if not path:
        raise ValueError("--out is empty")
    if os.path.isdir(path):
        raise ValueError(f"--out {path!r} is a folder; give a file name, e.g. "
                         f"{os.path.join(path, 'pipeline' + PIPELINE_SUFFIX)!r}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"--out {path!r} exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        # walk up: is a parent a regular file, or just missing?
        parent = folder
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if os.path.isfile(parent):
            raise ValueError(f"--out {path!r}: {parent!r} is a file, not a folder")
        raise ValueError(f"--out {path!r}: folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise ValueError(f"--out {path!r}: {folder!r} is a file, not a folder")
    try:  # the real test: can a file be created (and renamed) there?
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".skfindkit-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {path!r}: cannot write in {folder!r} "
                         f"({exc.strerror or exc})") from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"--out {path!r} exists and is not writable")
    return path


# ------------------------------------------------------------- loading files
def _check_text(path, encoding):
    """Raise a clear error for a file that is not text in ``encoding``."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data:
        raise ValueError("it is an empty (zero-byte) file")
    if b"\x00" in data[:8192] and not encoding.lower().startswith("utf-16"):
        raise ValueError("it holds binary data (NUL bytes), not text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not valid {encoding} text (byte {exc.start}: {exc.reason}); "
                         "choose another --encoding") from None
    if not re.search(r"\w", text):
        raise ValueError("it holds no words")


def _looks_like_text(path):
    with open(path, "rb") as handle:
        head = handle.read(2048)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(head) and b"\x00" not in head


def load_rows(pipeline, files, *, kind, encoding="utf-8", fitted=False):
    """Fit the pipeline's first step (unless ``fitted``) and compute its output.

    Files that fail are reported, not indexed: returns ``(X, good, failures,
    notes)`` with ``X`` the rows of the good files only, ``good`` their
    positions in ``files``, ``failures`` a list of ``{"file", "reason"}`` and
    ``notes`` the loaders' other warnings (e.g. a truncated sound file).
    """
    failures = {}
    candidates = []
    for position, path in enumerate(files):
        try:
            if kind == "text":
                _check_text(path, encoding)
            elif os.path.getsize(path) == 0:
                raise ValueError("it is an empty (zero-byte) file")
            candidates.append(position)
        except (OSError, ValueError) as exc:
            failures[position] = str(exc) if not isinstance(exc, OSError) else (
                exc.strerror or str(exc))
    if not candidates:
        return None, np.array([], dtype=int), _as_list(files, failures), []
    first = pipeline.steps[0][1]
    items = [files[p] for p in candidates]
    if "on_error" in first.get_params():
        first.set_params(on_error="nan")
    from .loaders import ItemLoadError, ItemLoadWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            X = np.asarray(first.transform(items) if fitted else first.fit_transform(items))
        except ItemLoadError as exc:
            if exc.position is not None:  # one item's own error (on_error unsupported)
                raise
            X = np.full((len(items), 1), np.nan)  # every item failed: no output shape
    messages = {w.message.position: w.message.reason for w in caught
                if isinstance(w.message, ItemLoadWarning)}
    notes = list(dict.fromkeys(str(w.message) for w in caught  # e.g. a truncated sound
                               if isinstance(w.message, UserWarning)
                               and not isinstance(w.message, ItemLoadWarning)))
    if "on_error" in first.get_params():
        first.set_params(on_error="raise")  # queries: a bad query file is an error
    ok = np.isfinite(X.reshape(len(items), -1)).all(axis=1)
    for i in np.flatnonzero(~ok):
        reason = messages.get(int(i), "its features are not finite numbers")
        if kind == "audio" and _looks_like_text(items[i]):
            reason = "it is a text file, not audio"
        failures[candidates[i]] = reason
    good = np.asarray(candidates)[ok]
    return X[ok], good, _as_list(files, failures), notes


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically."""
    from .io import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def _as_list(files, failures):
    return [{"file": files[p], "reason": failures[p]} for p in sorted(failures)]


@contextlib.contextmanager
def quiet_native_stderr(enabled=True):
    """Send what C libraries write to file descriptor 2 (libmpg123 warnings...)
    to a temporary file, while Python's own ``sys.stderr`` (progress bars, our
    messages) still reaches the terminal. Yields a list that receives the
    number of suppressed lines.
    """
    suppressed = []
    if not enabled:
        yield suppressed
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. captured by a test runner)
        yield suppressed
        return
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as sink:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        os.dup2(sink.fileno(), 2)
        try:
            yield suppressed
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sys.stderr.close()
            sys.stderr = python_stderr
            sink.seek(0)
            suppressed.append(len(sink.read().splitlines()))
