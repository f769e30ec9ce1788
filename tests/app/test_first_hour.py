"""The first hour: bad query files, progress, one-time compilation, truncated sounds."""

import json

import numpy as np
import pytest

from skfindkit.cli import main

from ._folders import write_faces

pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")


@pytest.fixture
def indexed(tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (image extra) is not installed")
    paths = write_faces(tmp_path / "faces")
    out = tmp_path / "faces.skfk"
    assert main(["index", str(tmp_path / "faces"), "--kind", "image", "--out", str(out),
                 "--quiet"]) == 0
    return out, paths


def test_query_continues_past_a_bad_file_and_lists_it(indexed, tmp_path, capsys):
    out, paths = indexed
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG but then nothing")
    failures = tmp_path / "failures.json"
    status = main(["query", str(out), str(bad), str(paths[0]), "-k", "2", "--format", "json",
                   "--failures", str(failures)])
    captured = capsys.readouterr()
    assert status == 0
    answered = json.loads(captured.out)
    assert [entry["query"] for entry in answered] == [str(paths[0])]
    assert answered[0]["results"][0]["file"] == str(paths[0])  # keys shown as paths
    assert f"failed: {bad}: " in captured.err
    assert "could not load item" not in captured.err  # the reason, not nested messages
    assert [f["file"] for f in json.loads(failures.read_text())] == [str(bad)]
    assert main(["query", str(out), str(bad), str(paths[0]), "--strict", "--quiet"]) == 1
    assert main(["query", str(out), str(bad), "--quiet"]) == 1  # nothing answered


def test_query_shows_progress_unless_quiet(indexed, capfd):
    out, paths = indexed
    capfd.readouterr()
    assert main(["query", str(out), *map(str, paths)]) == 0
    assert "FunctionVectorLoader" in capfd.readouterr().err  # the loader's progress bar
    assert main(["query", str(out), *map(str, paths), "--quiet"]) == 0
    assert "FunctionVectorLoader" not in capfd.readouterr().err


def test_no_time_estimate_while_the_first_item_does_one_time_work(capsys):
    pytest.importorskip("tqdm")
    from skfindkit.utils import progress

    during_first = None
    items = list(progress(range(5), verbose=1, desc="Loader", unit="clip", warmup=True))
    capsys.readouterr()
    for item in progress(range(5), verbose=1, desc="Loader", unit="clip", warmup=True):
        if item == 0:
            during_first = capsys.readouterr().err
    after = capsys.readouterr().err
    assert items == [0, 1, 2, 3, 4]
    assert "one-time setup" in during_first
    assert "<" not in during_first and "/s" not in during_first  # no ETA, no rate
    assert "Loader:  20%" in after and "1/5" in after  # the bar goes on from the first item
    assert list(progress(range(5), verbose=0, desc="Loader", warmup=True)) == items


def test_a_truncated_wav_is_a_warning_naming_it(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    from skfindkit.loaders._audio_io import TruncatedAudioWarning, read_audio

    whole = tmp_path / "whole.wav"
    soundfile.write(whole, 0.3 * np.sin(np.arange(22050) / 7.0), 22050, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:15000])
    with pytest.warns(TruncatedAudioWarning, match=r"cut\.wav' is truncated: .* 1 s of sound"):
        y = read_audio(str(cut), sampling_rate=22050)
    assert 0 < y.size < 22050
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_audio(str(whole), sampling_rate=22050)  # a whole file: no warning


@pytest.mark.slow
def test_the_cli_names_a_truncated_sound(tmp_path, capfd):
    pytest.importorskip("librosa")
    from ._folders import write_sounds

    paths = write_sounds(tmp_path / "sounds")
    wav = next(p for p in paths if p.suffix == ".wav")
    wav.write_bytes(wav.read_bytes()[:6000])
    out = tmp_path / "sounds.skfk"
    assert main(["index", str(tmp_path / "sounds"), "--kind", "audio", "--out", str(out)]) == 0
    err = capfd.readouterr().err
    assert f"warning: '{wav}' is truncated" in err
