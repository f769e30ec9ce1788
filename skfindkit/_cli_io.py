"""What the ``skfindkit`` file commands share: file lists, output checks, pipeline
files, loading a collection file by file (failures reported, never indexed), and
keeping native libraries' stderr chatter off the terminal.
"""

import contextlib
import json
import os
import re
import sys
import tempfile
import warnings

import numpy as np

from .utils import final_index

__all__ = ["EXTENSIONS", "PIPELINE_SUFFIX", "TRUST_PICKLE_HELP", "check_output_path",
           "list_files", "load_pipeline", "load_rows", "pipeline_file_kind",
           "quiet_native_stderr", "save_pipeline", "wants_pickle", "write_json"]

EXTENSIONS = {
    "audio": (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"),
    "image": (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"),
    "text": (".txt", ".md", ".rst", ".text"),
}

# below this many files per worker, starting worker processes costs more than it saves
# (an 8-file folder took 2-3x longer with --n-jobs 2 than with one job)
MIN_FILES_PER_WORKER = 64


def list_files(paths, kind):
    """Files of ``kind`` in ``paths`` (files, or folders searched recursively), sorted."""
    found = []
    for path in paths:
        if os.path.isfile(path):
            found.append(os.path.abspath(path))
            continue
        if not os.path.isdir(path):
            raise FileNotFoundError(f"no such file or folder: {path!r}")
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(EXTENSIONS[kind]) and not name.startswith("."):
                    found.append(os.path.abspath(os.path.join(root, name)))
    if not found:
        raise ValueError(f"no {kind} files ({', '.join(EXTENSIONS[kind])}) found in "
                         + ", ".join(repr(p) for p in paths))
    return found


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


# ---------------------------------------------------------- pipeline files
# Pipeline files are in skfindkit's safe format (skfindkit.io: runs no code when
# loaded) unless the user asks for a pickle by its name (.joblib/.pkl/.pickle):
# those are written on request and read only with --trust-pickle.
PIPELINE_SUFFIX = ".skfk"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TRUST_PICKLE_HELP = ("also load a pickle/joblib pipeline file: pickles run code when "
                     "loaded, so only for files you trust (you wrote yourself)")


def wants_pickle(path):
    """Whether an output name asks for a pickle (``.joblib``, ``.pkl``, ``.pickle``)."""
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def save_pipeline(pipeline, path, kind=None):
    """Write ``pipeline`` to ``path`` atomically (temporary file, fsync, rename).

    ``kind``: ``"safe"`` (:func:`skfindkit.io.save`) or ``"pickle"`` (joblib);
    None chooses by the file name (a pickle only for ``PICKLE_SUFFIXES``).
    """
    from . import io as skio

    if kind is None:
        kind = "pickle" if wants_pickle(path) else "safe"
    if kind == "safe":
        skio.save(pipeline, path)
        return
    import joblib

    with skio.atomic_write(path) as handle:
        joblib.dump(pipeline, handle)


def pipeline_file_kind(path):
    """``"safe"`` or ``"pickle"``: what the existing pipeline file at ``path`` is."""
    from . import io as skio

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such pipeline file: {path!r}")
    kind = skio.file_kind(path)
    if kind is None:
        raise ValueError(f"{path!r} is not a skfindkit pipeline file (neither skfindkit's "
                         "safe format nor a joblib file)")
    return kind


def load_pipeline(path, *, trust_pickle=False, check=True, mmap_mode=None):
    """Read a pipeline saved by ``skfindkit index`` (the safe format; pickles if trusted).

    ``check``: refuse anything but a fitted Pipeline ending with a skfindkit index;
    ``mmap_mode``: passed to :func:`skfindkit.io.load` (and ``joblib.load``).
    """
    from . import io as skio

    path = os.fspath(path)
    if pipeline_file_kind(path) == "pickle":
        if not trust_pickle:
            raise ValueError(
                f"{path!r} is a pickle/joblib file, which can run any code when loaded: "
                "skfindkit loads it only with --trust-pickle (for files you trust), or save "
                "it once in the safe format: skfindkit.io.save(joblib.load(PATH), "
                f"'pipeline{PIPELINE_SUFFIX}')"
            )
        import joblib

        try:
            pipeline = joblib.load(path, mmap_mode=mmap_mode)
        except Exception as exc:  # any unpickling failure: say what the file is not
            raise ValueError(f"{path!r} is not a readable skfindkit pipeline file "
                             f"({type(exc).__name__}: {exc})") from exc
    else:
        try:
            pipeline = skio.load(path, mmap_mode=mmap_mode)
        except skio.UntrustedTypeError as exc:
            raise ValueError(f"{exc} (skfindkit's command loads only skfindkit and "
                             "scikit-learn estimators)") from exc
    if not check:
        return pipeline
    try:
        fitted = hasattr(pipeline, "steps") and hasattr(final_index(pipeline), "n_samples_fit_")
    except (TypeError, ValueError, AttributeError):  # not an index, or not fitted
        fitted = False
    if not fitted:
        raise ValueError(f"{path!r} holds a {type(pipeline).__name__}, not a fitted pipeline "
                         "ending with an skfindkit index (make one with 'skfindkit index')")
    return pipeline


# ------------------------------------------------------------- loading files
_WARNING = re.compile(r"could not load item (\d+) \((.*?)\): (.*?)\. It is replaced by", re.S)
_NESTED = re.compile(r"^(?:ItemLoadError: )?\w+ could not load item \d+ \(.*?\): ")


_UNDECODABLE = re.compile(r"cannot decode '.*' as audio: (.*?) \(fallback decoder: (\w+): ?(.*)\)$",
                          re.S)


def _reason(message):
    """The innermost reason of a (possibly nested) loader message, in plain words."""
    previous = None
    while previous != message:
        previous, message = message, _NESTED.sub("", message)
    message = re.sub(r"^ValueError: ", "", message.strip())
    match = _UNDECODABLE.search(message)
    if match:  # soundfile's and audioread's messages say little to a person
        first = re.sub(r"Error opening '.*?': ", "", match.group(1))
        first = first.replace("File does not exist or is not a regular file (possibly a pipe?).",
                              "unsupported or corrupt data.")
        second = ("no installed backend can decode it" if match.group(2) == "NoBackendError"
                  else f"{match.group(2)}: {match.group(3)}".rstrip(": "))
        message = (f"not a readable audio file (libsndfile: {first.rstrip('.')}; "
                   f"fallback decoder: {second})")
    return message


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

    Files that fail are reported, not indexed: returns ``(X, good, failures)``
    with ``X`` the rows of the good files only, ``good`` their positions in
    ``files`` and ``failures`` a list of ``{"file", "reason"}``.
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
        return None, np.array([], dtype=int), _as_list(files, failures)
    first = pipeline.steps[0][1]
    items = [files[p] for p in candidates]
    if "on_error" in first.get_params():
        first.set_params(on_error="nan")
    from .loaders import ItemLoadError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            X = np.asarray(first.transform(items) if fitted else first.fit_transform(items))
        except ItemLoadError as exc:
            if exc.position is not None:  # one item's own error (on_error unsupported)
                raise
            X = np.full((len(items), 1), np.nan)  # every item failed: no output shape
    messages = {}
    for w in caught:
        match = _WARNING.search(str(w.message))
        if match:
            messages[int(match.group(1))] = _reason(match.group(3))
    if "on_error" in first.get_params():
        first.set_params(on_error="raise")  # queries: a bad query file is an error
    ok = np.isfinite(X.reshape(len(items), -1)).all(axis=1)
    for i in np.flatnonzero(~ok):
        reason = messages.get(int(i), "its features are not finite numbers")
        if kind == "audio" and _looks_like_text(items[i]):
            reason = "it is a text file, not audio"
        failures[candidates[i]] = reason
    good = np.asarray(candidates)[ok]
    return X[ok], good, _as_list(files, failures)


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
