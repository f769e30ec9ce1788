"""EssentiaVectorLoader: audio files -> pooled essentia low-level descriptors."""

from numbers import Integral

import numpy as np

from ..utils import import_optional
from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval
from ._audio_io import AUDIO_PARAMETER_CONSTRAINTS, read_audio
from ._base import BaseVectorLoader
from ._pooling import check_pooling, pool_frames, pooled_names

__all__ = ["EssentiaVectorLoader"]

_SPECTRAL = (
    "centroid",
    "rolloff",
    "flux",
    "flatness_db",
    "complexity",
    "zcr",
    "rms",
)
DESCRIPTOR_GROUPS = ("mfcc", "bark", "spectral", "tonal")


def _group_names(group, n_mfcc):
    if group == "mfcc":
        return [f"mfcc{i}" for i in range(n_mfcc)]
    if group == "bark":
        return [f"bark{i}" for i in range(27)]
    if group == "spectral":
        return [f"spectral_{name}" for name in _SPECTRAL]
    return [f"hpcp{i}" for i in range(12)]


class EssentiaVectorLoader(BaseVectorLoader):
    """Load audio files into pooled essentia frame descriptors.

    Clips are read exactly as by :class:`STFTVectorLoader` (same decoding,
    resampling, trimming, normalisation and bad-input errors); each frame is
    windowed (Hann), its spectrum computed with essentia, and the chosen
    descriptor groups are computed per frame and pooled over time.

    Parameters
    ----------
    descriptors : str or sequence of str, default=("mfcc", "spectral")
        Descriptor groups, concatenated in the order given:

        - ``"mfcc"``: essentia ``MFCC`` (``n_mfcc`` coefficients);
        - ``"bark"``: ``BarkBands`` energies (27 bands, log10-compressed);
        - ``"spectral"``: ``Centroid``, ``RollOff``, ``Flux``, ``FlatnessDB``,
          ``SpectralComplexity``, ``ZeroCrossingRate`` and frame ``RMS``;
        - ``"tonal"``: 12-bin ``HPCP`` chroma from ``SpectralPeaks``.
    sampling_rate : int, default=44100
        Rate every clip is resampled to.
    frame_size : int, default=2048
        Frame length (samples); shorter clips are an error.
    hop_size : int, default=1024
        Hop between frames (samples).
    n_mfcc : int, default=13
        MFCC coefficients for ``"mfcc"``.
    pooling : str or sequence of str, default=("mean", "std")
        Statistics over time among ``"mean"``, ``"std"``, ``"max"``, ``"min"``,
        ``"median"``.
    n_segments : int, default=1
        Temporal segment pooling (statistics of equal time segments,
        concatenated). A clip with fewer frames than segments has its frames
        linearly interpolated at the segments' centres (one frame each).
    top_db : float or None, default=None
        Trim leading/trailing audio quieter than ``top_db`` below the peak.
    normalize : {"peak", "rms"} or None, default=None
        Scale each clip to unit peak or unit RMS first.
    n_jobs : int, default=None
        Number of joblib workers; ``None`` means 1, ``-1`` all cores.
    verbose : int, default=0
        Show a tqdm progress bar when > 0.
    on_error : {"raise", "nan", "zeros"}, default="raise"
        Policy for clips that fail: raise an error naming the file, or warn and
        put an aligned row of NaN / zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import EssentiaVectorLoader
    >>> t = np.arange(44100) / 44100
    >>> clips = [np.sin(2 * np.pi * f * t) for f in (220, 440)]
    >>> loader = EssentiaVectorLoader(descriptors=["spectral", "tonal"], pooling="mean")
    >>> loader.fit_transform(clips).shape
    (2, 19)
    >>> loader.get_feature_names_out()[0]
    'spectral_centroid_mean'
    """

    _parameter_constraints = {
        **BaseVectorLoader._parameter_constraints,
        **AUDIO_PARAMETER_CONSTRAINTS,
        "descriptors": [str, list, tuple],
        "frame_size": [Interval(Integral, 64, None, closed="left")],
        "hop_size": [Interval(Integral, 1, None, closed="left")],
        "n_mfcc": [Interval(Integral, 1, 40, closed="both")],
        "pooling": [str, list, tuple],
        "n_segments": [Interval(Integral, 1, None, closed="left")],
    }
    _item_name = "clip"
    _kind = "audio"
    _requires = (Requirement(library="essentia", import_name="essentia", extra="essentia"),
                 Requirement(library="soundfile", import_name="soundfile", extra="essentia"))

    def __init__(
        self,
        descriptors=("mfcc", "spectral"),
        *,
        sampling_rate=44100,
        frame_size=2048,
        hop_size=1024,
        n_mfcc=13,
        pooling=("mean", "std"),
        n_segments=1,
        top_db=None,
        normalize=None,
        n_jobs=None,
        verbose=0,
        on_error="raise",
    ):
        self.descriptors = descriptors
        self.sampling_rate = sampling_rate
        self.frame_size = frame_size
        self.hop_size = hop_size
        self.n_mfcc = n_mfcc
        self.pooling = pooling
        self.n_segments = n_segments
        self.top_db = top_db
        self.normalize = normalize
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.on_error = on_error

    def _groups(self):
        groups = (
            (self.descriptors,) if isinstance(self.descriptors, str) else tuple(self.descriptors)
        )
        bad = [g for g in groups if g not in DESCRIPTOR_GROUPS]
        if not groups or bad or len(set(groups)) != len(groups):
            raise ValueError(
                "The 'descriptors' parameter of EssentiaVectorLoader must be one of "
                f"{list(DESCRIPTOR_GROUPS)} or a sequence of distinct ones; got "
                f"{self.descriptors!r}."
            )
        return groups

    def _check_params(self):
        self._groups()
        check_pooling(self.pooling, self.n_segments, type(self).__name__)

    def _feature_names(self):
        names = [n for g in self._groups() for n in _group_names(g, self.n_mfcc)]
        stats = check_pooling(self.pooling, self.n_segments, type(self).__name__)
        return pooled_names(names, stats, self.n_segments)

    def _item_shape(self):
        return (len(self._feature_names()),)

    def _prepare(self):
        essentia = import_optional("essentia", "essentia")
        essentia.log.infoActive = False  # no "[ INFO ]" chatter on import
        es = import_optional("essentia.standard", "essentia")
        sr, n_bins = float(self.sampling_rate), self.frame_size // 2 + 1
        algos = {
            "window": es.Windowing(type="hann", size=self.frame_size),
            "spectrum": es.Spectrum(size=self.frame_size),
            "mfcc": es.MFCC(
                inputSize=n_bins, sampleRate=sr, numberCoefficients=self.n_mfcc
            ),
            "bark": es.BarkBands(sampleRate=sr),
            "centroid": es.Centroid(range=sr / 2),
            "rolloff": es.RollOff(sampleRate=sr),
            "flux": es.Flux(),
            "flatness_db": es.FlatnessDB(),
            "complexity": es.SpectralComplexity(sampleRate=sr),
            "zcr": es.ZeroCrossingRate(),
            "rms": es.RMS(),
            "peaks": es.SpectralPeaks(sampleRate=sr, minFrequency=40, maxFrequency=5000),
            "hpcp": es.HPCP(size=12, sampleRate=sr),
        }
        stats = check_pooling(self.pooling, self.n_segments, type(self).__name__)
        computes = {name: _direct_compute(algo) for name, algo in algos.items()}
        functions = [_group_function(g, computes) for g in self._groups()]
        return es, algos, computes, functions, stats

    def _load_item(self, item, context):
        es, algos, computes, functions, stats = context
        y = read_audio(
            item,
            sampling_rate=self.sampling_rate,
            top_db=self.top_db,
            normalize=self.normalize,
            min_samples=self.frame_size,
        )
        algos["flux"].reset()  # Flux remembers the previous clip's last frame
        frames = es.FrameGenerator(
            y, frameSize=self.frame_size, hopSize=self.hop_size, startFromZero=True
        )
        window, spectrum = computes["window"], computes["spectrum"]
        if len(functions) == 1:  # one group: no per-frame loop over groups
            function = functions[0]
            parts = [[function(spectrum(window(frame)), frame) for frame in frames]]
        else:
            parts = [[] for _ in functions]  # per group: one value list per frame
            for frame in frames:
                spec = spectrum(window(frame))
                for part, function in zip(parts, functions):
                    part.append(function(spec, frame))
        # one conversion per group instead of one concatenation per frame
        features = np.hstack(
            [np.array(part, dtype=np.float64).reshape(len(part), -1) for part in parts]
        )
        return pool_frames(features, stats, self.n_segments)


def _direct_compute(algo):
    """``algo``'s C++ compute, without ``essentia.standard``'s per-call Python layer.

    That layer checks the argument count and converts each argument to the
    input's essentia type; here every argument is already of that type (1-D
    C-contiguous float32 arrays: frames, windowed frames, spectra, peaks), which
    the conversion returns unchanged, so the results are the same. It costs
    7-8 us per call, more than the MFCC of a 2048-sample frame itself (5 us).
    Falls back to the checked call if an essentia version lacks the method.
    """
    return getattr(algo, "__compute__", algo)


def _group_function(group, algos):
    """``function(spectrum, frame) -> values`` computing one descriptor group.

    ``algos`` maps names to compute functions (see :func:`_direct_compute`).
    """
    if group == "mfcc":
        mfcc = algos["mfcc"]
        return lambda spectrum, frame: mfcc(spectrum)[1]
    if group == "bark":
        bark = algos["bark"]
        return lambda spectrum, frame: np.log10(bark(spectrum) + 1e-10)
    if group == "spectral":
        return lambda spectrum, frame: _spectral(spectrum, frame, algos)
    peaks, hpcp = algos["peaks"], algos["hpcp"]
    return lambda spectrum, frame: hpcp(*peaks(spectrum))


def _spectral(spectrum, frame, algos):
    """The ``"spectral"`` group's values, in the order of ``_SPECTRAL``."""
    silent = not np.any(spectrum > 0)
    return [
        algos["centroid"](spectrum),
        algos["rolloff"](spectrum),
        algos["flux"](spectrum),
        0.0 if silent else algos["flatness_db"](spectrum),
        algos["complexity"](spectrum),
        algos["zcr"](frame),
        algos["rms"](frame),
    ]
