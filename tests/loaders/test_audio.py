"""STFTVectorLoader and EssentiaVectorLoader on synthesized audio files."""

import importlib.util

import joblib
import numpy as np
import pytest

pytest.importorskip("librosa")  # the "audio" extra
pytest.importorskip("soundfile")
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from .._audio_fixtures import synth, write_bad_files, write_dataset
from skfindkit import ExactIndex
from skfindkit.loaders import (
    EssentiaVectorLoader,
    ItemLoadError,
    ItemLoadWarning,
    STFTVectorLoader,
)

AUDIO_LOADERS = [
    STFTVectorLoader,
    pytest.param(EssentiaVectorLoader, marks=pytest.mark.skipif(
        importlib.util.find_spec("essentia") is None,
        reason="needs essentia: pip install 'skfindkit[essentia]'",
    )),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("audio"), n_per_family=4)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, dataset):
    return write_bad_files(tmp_path_factory.mktemp("bad"), dataset[0][0])


@pytest.mark.parametrize("Loader", AUDIO_LOADERS)
def test_shape_names_and_pipeline_retrieval(Loader, dataset):
    paths, labels = dataset
    loader = Loader(n_segments=2, pooling=["mean", "std", "max"])
    out = loader.fit_transform(paths)
    assert out.shape == (len(paths), len(loader.get_feature_names_out()))
    assert np.isfinite(out).all()
    pipe = Pipeline([("loader", Loader()), ("index", ExactIndex(n_neighbors=3))])
    pipe.fit(paths, labels)
    assert pipe.score(paths, labels) >= 0.75


@pytest.mark.parametrize("Loader", AUDIO_LOADERS)
def test_parallel_and_joblib_round_trip_identical(Loader, dataset, tmp_path):
    paths, _ = dataset
    serial = Loader().transform(paths)
    np.testing.assert_array_equal(Loader(n_jobs=2).transform(paths), serial)
    joblib.dump(Loader(n_jobs=2), tmp_path / "loader.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "loader.joblib").transform(paths), serial)


@pytest.mark.parametrize("Loader", AUDIO_LOADERS)
@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "fake", "truncated", "silent", "short"]
)
def test_bad_input_names_the_file(Loader, case, dataset, bad_files):
    bad, match = bad_files[case]
    items = [dataset[0][0], str(bad)]
    with pytest.raises(ItemLoadError, match=rf"item 1 .*{match}"):
        Loader().transform(items)
    with pytest.warns(ItemLoadWarning, match=rf"item 1 .*{match}"):
        out = Loader(on_error="nan").transform(items)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()


def test_flac_ogg_and_resampling_match_wav(tmp_path):
    import soundfile as sf

    clip = synth("tone", 1, sr=44100)
    for fmt in ("WAV", "FLAC", "OGG"):
        sf.write(tmp_path / f"a.{fmt.lower()}", clip, 44100, format=fmt)
    loader = STFTVectorLoader(representation="mfcc")
    wav, flac, ogg = loader.transform([str(tmp_path / f"a.{e}") for e in ("wav", "flac", "ogg")])
    np.testing.assert_allclose(flac, wav, atol=1e-3 * np.abs(wav).max())
    assert np.linalg.norm(ogg - wav) < 0.1 * np.linalg.norm(wav)  # lossy codec
    direct = loader.transform([synth("tone", 1, sr=22050)])[0]
    assert np.linalg.norm(wav - direct) < 0.1 * np.linalg.norm(direct)


def test_level_normalisation_makes_vectors_level_invariant():
    clip = synth("chirp", 2)
    for params in [{"normalize": "peak"}, {"normalize": "rms"},
                   {"representation": "mfcc", "remove_mean": True, "pooling": "std"}]:
        out = STFTVectorLoader(**params).transform([clip, 0.1 * clip])
        np.testing.assert_allclose(out[0], out[1], rtol=1e-3, atol=1e-2)
    raw = STFTVectorLoader().transform([clip, 0.1 * clip])
    assert not np.allclose(raw[0], raw[1], atol=1.0)


def test_trimming_removes_silence_and_short_after_trim_is_an_error():
    clip = synth("tone", 3)
    padded = np.concatenate([np.zeros(11025, np.float32), clip, np.zeros(11025, np.float32)])
    trimmed = STFTVectorLoader(top_db=30, pooling="mean").transform([padded, clip])
    kept = STFTVectorLoader(pooling="mean").transform([padded, clip])
    gap_trimmed = np.linalg.norm(trimmed[0] - trimmed[1])
    assert gap_trimmed < 0.3 * np.linalg.norm(kept[0] - kept[1])
    blip = np.zeros(22050, np.float32)
    blip[100:400] = 0.5
    STFTVectorLoader(n_fft=4096).transform([blip])  # long enough untrimmed
    with pytest.raises(ItemLoadError, match="after trimming"):
        STFTVectorLoader(top_db=20, n_fft=4096).transform([blip])


@pytest.mark.parametrize(
    "params, match",
    [({"representation": "cqt"}, "representation"), ({"pooling": ["mean", "p90"]}, "pooling"),
     ({"n_segments": 0}, "n_segments"), ({"deltas": 3}, "deltas"),
     ({"n_mfcc": 80, "representation": "mfcc"}, "n_mfcc"), ({"normalize": "loud"}, "normalize")],
)
def test_bad_parameters_name_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        STFTVectorLoader(**params).fit([synth("tone", 0)])


def test_bad_essentia_descriptors():
    # parameters are checked before essentia is imported: runs without it
    with pytest.raises(ValueError, match="descriptors"):
        EssentiaVectorLoader(descriptors=["mfcc", "rhythm"]).fit([synth("tone", 0)])


@pytest.mark.parametrize("Loader", AUDIO_LOADERS)
def test_clip_shorter_than_its_segments_gives_a_vector(Loader):
    """0.05 s: 3 frames of 512 samples for 4 segments (issue 9 §5)."""
    tone = synth("tone", 2, seconds=1.0)
    short = tone[: int(0.05 * 22050)]
    # waveforms are taken at the loader's rate; frames of 1024 samples, hop 512
    rate = {} if Loader is STFTVectorLoader else {
        "sampling_rate": 22050, "frame_size": 1024, "hop_size": 512}
    loader = Loader(n_segments=4, pooling=["mean", "std"], **rate)
    out = loader.fit_transform([short, tone])
    assert out.shape == (2, len(loader.get_feature_names_out())) and np.isfinite(out).all()
    # a steady tone: every segment of the short clip describes the same sound
    segments = out[0].reshape(4, 2, -1)
    assert (segments[:, 1] == 0).all()  # one interpolated frame per segment
    long_means = out[1].reshape(4, 2, -1)[:, 0]
    spread = np.abs(long_means - long_means.mean(axis=0)).max()
    assert np.abs(segments[1:3, 0] - long_means.mean(axis=0)).max() < 10 * spread + 1.0
    # a collection with a short clip runs through a whole grid search
    clips = [synth(f, v) for f in ("tone", "noise") for v in range(4)] + [short]
    pipe = Pipeline([("loader", Loader(**rate)), ("index", ExactIndex(n_neighbors=1))])
    GridSearchCV(pipe, {"loader__n_segments": [1, 4]}, cv=StratifiedKFold(2)).fit(
        clips, [0] * 4 + [1] * 4 + [0]
    )


def test_pooling_interpolates_short_frame_sequences():
    from skfindkit.loaders._pooling import pool_frames

    frames = np.array([[0.0], [3.0]])  # two frames, centres at 1/4 and 3/4
    np.testing.assert_allclose(pool_frames(frames, ("mean",), 4), [0.0, 0.75, 2.25, 3.0])
    np.testing.assert_allclose(pool_frames(frames[:1], ("mean", "std"), 3), [0, 0] * 3)
    np.testing.assert_allclose(pool_frames(np.arange(8.0)[:, None], ("max",), 4),
                               [1, 3, 5, 7])  # enough frames: plain segments


def test_grid_search_finds_the_segments_that_tell_time_order():
    """Rising vs falling chirps: the same spectrum pooled over the whole clip.

    Only temporal segments (``n_segments > 1``) tell them apart, so the grid
    search must choose them, at perfect accuracy, over every whole-clip mean.
    """
    clips, labels = [], []
    for variant in range(8):
        rising = synth("chirp", variant, seconds=0.5)
        clips += [rising, rising[::-1].copy()]
        labels += [0, 1]
    pipe = Pipeline([("loader", STFTVectorLoader(pooling="mean")),
                     ("index", ExactIndex(n_neighbors=1))])
    grid = GridSearchCV(
        pipe,
        {"loader__representation": ["log", "mfcc"], "loader__n_segments": [1, 2]},
        cv=StratifiedKFold(2),  # an index is no classifier: stratify explicitly
    ).fit(clips, labels)
    assert grid.best_params_["loader__n_segments"] == 2
    assert grid.best_score_ == 1.0
    scores = dict(zip(map(str, grid.cv_results_["params"]), grid.cv_results_["mean_test_score"]))
    whole_clip = [v for k, v in scores.items() if "'loader__n_segments': 1" in k]
    assert max(whole_clip) <= 0.75, scores  # about chance: time order is invisible
