"""Reading audio items (files or waveforms) with the checks every audio loader shares."""

import os
import warnings
from numbers import Integral, Real

import numpy as np

from ..utils import import_optional
from ..utils._sklearn_compat import Interval, StrOptions
from ._base import check_file

__all__ = ["AUDIO_PARAMETER_CONSTRAINTS", "TruncatedAudioWarning", "read_audio"]

SILENCE_PEAK = 1e-6

AUDIO_PARAMETER_CONSTRAINTS = {
    "sampling_rate": [Interval(Integral, 1000, None, closed="left")],
    "top_db": [Interval(Real, 0, None, closed="neither"), None],
    "normalize": [StrOptions({"peak", "rms"}), None],
}


class TruncatedAudioWarning(UserWarning):
    """A sound file holds fewer samples than its header announces (a cut download or
    copy); the samples it holds are used."""


def _declared_frames(path):
    """The frames a RIFF/WAVE file's header announces, or None (another format, a
    streamed file whose header gives no size, an unreadable header)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        align = None
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"fmt ":
                fmt = handle.read(size + (size & 1))
                if len(fmt) < 14:
                    return None
                align = int.from_bytes(fmt[12:14], "little")  # bytes per frame
            elif name == b"data":
                return size // align if align and 0 < size < 0xFFFFFFFF else None
            else:
                handle.seek(size + (size & 1), os.SEEK_CUR)


def _warn_if_truncated(path, n_frames, rate):
    declared = _declared_frames(path)
    if declared is not None and declared > n_frames:
        warnings.warn(TruncatedAudioWarning(
            f"{path!r} is truncated: its header announces {declared / rate:.3g} s of sound "
            f"but the file holds {n_frames / rate:.3g} s; the shorter clip is used"),
            stacklevel=2)


def _decode(path, soundfile):
    """Decode a file with soundfile, falling back to librosa (audioread) for MP3 & co."""
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
        _warn_if_truncated(path, samples.shape[0], rate)
        if samples.shape[1] == 1:  # mono: the column itself (a mean would copy it)
            return samples[:, 0], rate
        return samples.mean(axis=1), rate
    except soundfile.LibsndfileError as sf_exc:
        librosa = import_optional("librosa", "audio")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # audioread deprecation chatter
                return librosa.load(path, sr=None, mono=True)
        except Exception as exc:
            first = getattr(sf_exc, "error_string", None) or str(sf_exc)
            if first.startswith("File does not exist or is not a regular file"):
                first = "unsupported or corrupt data"  # libsndfile's words for unknown formats
            second = ("no installed backend can decode it" if type(exc).__name__ ==
                      "NoBackendError" else f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise ValueError(
                f"not a readable audio file (libsndfile: {first.rstrip('.')}; "
                f"fallback decoder: {second})"
            ) from sf_exc


def read_audio(item, *, sampling_rate, top_db=None, normalize=None, min_samples=1):
    """Load one item as a mono float32 waveform at ``sampling_rate``.

    Parameters
    ----------
    item : str, os.PathLike or ndarray of shape (n_samples,)
        An audio file (WAV/FLAC/OGG... through soundfile, other formats through
        librosa's fallback decoder) or a mono waveform already at ``sampling_rate``.
    sampling_rate : int
        Target sampling rate; files are resampled to it.
    top_db : float or None
        Trim leading and trailing parts quieter than ``top_db`` below the peak.
    normalize : {"peak", "rms"} or None
        Scale to unit peak amplitude or unit RMS.
    min_samples : int
        Fewer samples (after trimming) raise a ValueError.

    Returns
    -------
    y : ndarray of shape (n_samples,), dtype float32
    """
    if isinstance(item, (str, os.PathLike)):
        soundfile = import_optional("soundfile", "audio")
        y, rate = _decode(check_file(item), soundfile)
        if rate != sampling_rate:
            librosa = import_optional("librosa", "audio")
            y = librosa.resample(y, orig_sr=rate, target_sr=sampling_rate)
    elif isinstance(item, np.ndarray) and item.dtype.kind in "fiu":
        if item.ndim != 1:
            raise ValueError(
                f"a waveform must be a 1-D array, got shape {item.shape}"
            )
        y = item.astype(np.float32)
    else:
        raise TypeError(
            "an audio item must be a file path or a 1-D waveform array, got "
            f"{type(item).__name__}"
        )
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.size == 0:
        raise ValueError("it contains no audio samples")
    peak = float(np.max(np.abs(y)))  # NaN or inf when any sample is: one pass
    if not np.isfinite(peak):
        raise ValueError("it contains NaN or infinite samples")
    if peak < SILENCE_PEAK:
        raise ValueError(f"it is silent (peak amplitude {peak:.3g} < {SILENCE_PEAK})")
    if top_db is not None:
        librosa = import_optional("librosa", "audio")
        y, _ = librosa.effects.trim(y, top_db=top_db)
    if y.size < min_samples:
        raise ValueError(
            f"it has {y.size} samples ({1000 * y.size / sampling_rate:.1f} ms at "
            f"{sampling_rate} Hz{' after trimming' if top_db is not None else ''}), "
            f"fewer than the frame length of {min_samples} samples"
        )
    if normalize == "peak":
        y = y / np.max(np.abs(y))
    elif normalize == "rms":
        y = y / np.sqrt(np.mean(np.square(y, dtype=np.float64)))
    return y.astype(np.float32, copy=False)
