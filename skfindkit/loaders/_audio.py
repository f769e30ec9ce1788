"""STFTVectorLoader: audio files -> pooled STFT / mel / MFCC vectors (librosa)."""

from numbers import Integral

import numpy as np

from ..utils import import_optional
from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval, StrOptions
from ._audio_io import AUDIO_PARAMETER_CONSTRAINTS, read_audio
from ._base import BaseVectorLoader
from ._pooling import check_pooling, pool_frames, pooled_names

__all__ = ["STFTVectorLoader"]

_AMIN = 1e-5  # floor of magnitudes before taking logs (-100 dB)


class STFTVectorLoader(BaseVectorLoader):
    """Load audio files into fixed-length vectors of pooled spectral frames.

    Each clip is read (soundfile, with librosa's fallback decoder for other
    formats), mixed to mono, resampled to ``sampling_rate``, optionally trimmed
    and normalised, turned into a short-time Fourier transform, mapped to a
    ``representation`` (with optional deltas), optionally mean-removed, and
    pooled over time into one vector.

    Parameters
    ----------
    sampling_rate : int, default=22050
        Rate every clip is resampled to.
    n_fft : int, default=1024
        FFT length (samples); clips shorter than this are an error.
    hop_length : int, default=512
        Hop between frames (samples).
    window : str, default="hann"
        Window name understood by ``scipy.signal.get_window``.
    representation : {"log", "magnitude", "mel", "mfcc"}, default="log"
        ``"magnitude"``: linear STFT magnitudes (``n_fft // 2 + 1`` bins);
        ``"log"``: the same in dB; ``"mel"``: log-mel energies in dB
        (``n_mels`` bands); ``"mfcc"``: ``n_mfcc`` MFCCs of the log-mel bands.
    n_mels : int, default=64
        Mel bands for ``"mel"`` and ``"mfcc"``.
    n_mfcc : int, default=20
        Coefficients for ``"mfcc"``.
    deltas : {0, 1, 2}, default=0
        Append first (1) or first and second (2) time derivatives of the frames.
    pooling : str or sequence of str, default=("mean", "std")
        Statistics over time among ``"mean"``, ``"std"``, ``"max"``, ``"min"``,
        ``"median"``, concatenated.
    n_segments : int, default=1
        Temporal segment pooling: the frames are split into this many equal
        segments whose statistics are concatenated, which keeps the coarse
        shape of a word or phrase. A clip with fewer frames than segments
        (e.g. 0.05 s: 3 frames at the default rate and hop) still gives a
        vector: its frames are linearly interpolated at the segments' centres,
        one frame per segment (``std`` 0 in each).
    top_db : float or None, default=None
        Trim leading/trailing audio quieter than ``top_db`` below the peak.
    normalize : {"peak", "rms"} or None, default=None
        Scale each clip to unit peak or unit RMS before analysis (recordings
        differ widely in level).
    remove_mean : bool, default=False
        Subtract each clip's mean frame from its frames before pooling
        (cepstral/spectral mean normalisation, removing level and channel
        colouring in log representations). The pooled ``"mean"`` of the whole
        clip is then zero, so use it with other statistics or ``n_segments > 1``.
    n_jobs : int, default=None
        Number of joblib workers; ``None`` means 1, ``-1`` all cores.
    verbose : int, default=0
        Show a tqdm progress bar when > 0.
    on_error : {"raise", "nan", "zeros"}, default="raise"
        Policy for clips that fail (missing, empty, undecodable, silent, shorter
        than ``n_fft``): raise an error naming the file, or warn and put an
        aligned row of NaN / zeros.

    Notes
    -----
    Items are file paths or 1-D float waveforms already at ``sampling_rate``.
    The output length is known from the parameters alone
    (``get_feature_names_out`` needs no data); the loader is stateless and
    ``fit`` only validates.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import STFTVectorLoader
    >>> t = np.arange(22050) / 22050
    >>> clips = [np.sin(2 * np.pi * f * t) for f in (220, 440, 880)]
    >>> loader = STFTVectorLoader(representation="mfcc", n_mfcc=13, deltas=1)
    >>> loader.fit_transform(clips).shape
    (3, 52)
    >>> loader.get_feature_names_out()[:2].tolist()
    ['mfcc0_mean', 'mfcc1_mean']
    """

    _parameter_constraints = {
        **BaseVectorLoader._parameter_constraints,
        **AUDIO_PARAMETER_CONSTRAINTS,
        "n_fft": [Interval(Integral, 16, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left")],
        "window": [str],
        "representation": [StrOptions({"log", "magnitude", "mel", "mfcc"})],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "n_mfcc": [Interval(Integral, 1, None, closed="left")],
        "deltas": [Interval(Integral, 0, 2, closed="both")],
        "pooling": [str, list, tuple],
        "n_segments": [Interval(Integral, 1, None, closed="left")],
        "remove_mean": ["boolean"],
    }
    _item_name = "clip"
    _kind = "audio"
    _requires = (Requirement(library="librosa", import_name="librosa", extra="audio"),
                 Requirement(library="soundfile", import_name="soundfile", extra="audio"))

    def __init__(
        self,
        *,
        sampling_rate=22050,
        n_fft=1024,
        hop_length=512,
        window="hann",
        representation="log",
        n_mels=64,
        n_mfcc=20,
        deltas=0,
        pooling=("mean", "std"),
        n_segments=1,
        top_db=None,
        normalize=None,
        remove_mean=False,
        n_jobs=None,
        verbose=0,
        on_error="raise",
    ):
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.window = window
        self.representation = representation
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.deltas = deltas
        self.pooling = pooling
        self.n_segments = n_segments
        self.top_db = top_db
        self.normalize = normalize
        self.remove_mean = remove_mean
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.on_error = on_error

    def _check_params(self):
        check_pooling(self.pooling, self.n_segments, type(self).__name__)
        if self.representation == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(
                f"n_mfcc={self.n_mfcc} must not exceed n_mels={self.n_mels}."
            )

    def _base_names(self):
        rep = self.representation
        if rep in ("magnitude", "log"):
            prefix, n = ("mag" if rep == "magnitude" else "logmag"), self.n_fft // 2 + 1
        else:
            prefix, n = rep, (self.n_mels if rep == "mel" else self.n_mfcc)
        names = [f"{prefix}{i}" for i in range(n)]
        for order in range(1, self.deltas + 1):
            names += [f"{prefix}{i}_d{order}" for i in range(n)]
        return names

    def _feature_names(self):
        stats = check_pooling(self.pooling, self.n_segments, type(self).__name__)
        return pooled_names(self._base_names(), stats, self.n_segments)

    def _item_shape(self):
        return (len(self._feature_names()),)

    def _prepare(self):
        librosa = import_optional("librosa", "audio")
        mel_basis = None
        if self.representation in ("mel", "mfcc"):
            mel_basis = librosa.filters.mel(
                sr=self.sampling_rate, n_fft=self.n_fft, n_mels=self.n_mels
            )
        stats = check_pooling(self.pooling, self.n_segments, type(self).__name__)
        # the window librosa.stft would build for every clip, built once
        window = librosa.filters.get_window(self.window, self.n_fft, fftbins=True)
        return librosa, mel_basis, stats, window

    def _frames(self, y, librosa, mel_basis, window):
        """(n_features, n_frames) representation of a waveform."""
        magnitude = np.abs(
            librosa.stft(y, n_fft=self.n_fft, hop_length=self.hop_length, window=window)
        )
        if self.representation == "magnitude":
            return magnitude
        if self.representation == "log":
            return librosa.amplitude_to_db(magnitude, ref=1.0, amin=_AMIN, top_db=None)
        log_mel = librosa.power_to_db(
            mel_basis @ magnitude**2, ref=1.0, amin=_AMIN**2, top_db=None
        )
        if self.representation == "mel":
            return log_mel
        return librosa.feature.mfcc(S=log_mel, n_mfcc=self.n_mfcc)

    def _load_item(self, item, context):
        librosa, mel_basis, stats, window = context
        y = read_audio(
            item,
            sampling_rate=self.sampling_rate,
            top_db=self.top_db,
            normalize=self.normalize,
            min_samples=self.n_fft,
        )
        frames = self._frames(y, librosa, mel_basis, window)
        frames = add_deltas(frames, self.deltas, librosa)
        frames = frames.T  # (n_frames, n_features)
        if self.remove_mean:
            frames = frames - frames.mean(axis=0)
        return pool_frames(frames, stats, self.n_segments)


def add_deltas(frames, deltas, librosa):
    """Stack ``frames`` (n_features, n_frames) with its first ``deltas`` derivatives."""
    if not deltas:
        return frames
    n_frames = frames.shape[1]
    width = min(9, n_frames if n_frames % 2 else n_frames - 1)
    if width < 3:
        raise ValueError(f"it has {n_frames} frames, too few for deltas (need 3)")
    return np.vstack(
        [frames]
        + [librosa.feature.delta(frames, width=width, order=k) for k in range(1, deltas + 1)]
    )
