"""The ``skfindkit`` command as a user runs it: a subprocess on folders that mix good
and bad files of each kind; exit codes, summaries, failure lists, no tracebacks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skfindkit.cli import main

from .._audio_fixtures import write_dataset

pytestmark = pytest.mark.slow  # subprocesses of the real command on real folders

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "skfindkit.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    return proc


def run_here(capsys, *args):
    """``skfindkit ARGS`` in this process: ``(exit status, stdout, stderr)``, read with
    ``capsys`` (Python's streams) or ``capfd`` (file descriptors 1 and 2). Each test
    above runs the real command in a subprocess first; the commands after it, and
    argument errors and help, run here (they reach ``main`` the same way)."""
    try:
        status = main(list(map(str, args)))
    except SystemExit as exit:  # argparse's usage errors and --help
        status = exit.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err[-3000:]
    return status, out, err


def _images(folder):
    pytest.importorskip("skimage")
    from PIL import Image
    from skimage import data

    good = []
    for name in ("camera", "coins", "astronaut"):
        pixels = getattr(data, name)()[::4, ::4]
        for suffix, img in (("", pixels), ("_mirror", pixels[:, ::-1])):
            path = folder / f"{name}{suffix}.png"
            Image.fromarray(np.ascontiguousarray(img)).save(path)
            good.append(path)
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "empty.jpg").write_bytes(b"")
    return good, {"broken.png": "cannot identify image", "empty.jpg": "empty"}


def _audio(folder):
    pytest.importorskip("librosa")
    paths, _ = write_dataset(folder, n_per_family=2)
    (folder / "notes.mp3").write_text("a text file with an audio name\n" * 20)
    (folder / "truncated.wav").write_bytes(open(paths[0], "rb").read()[:30])
    # an ID3 header then garbage: libmpg123 prints warnings of its own on fd 2
    (folder / "junk.mp3").write_bytes(b"ID3\x03" + bytes(6) + bytes(range(256)) * 40)
    return [Path(p) for p in paths], {"notes.mp3": "text file, not audio",
                                      "truncated.wav": "not a readable audio file",
                                      "junk.mp3": "not a readable audio file"}


def _texts(folder):
    pytest.importorskip("gensim")
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
        docs = [line for line in handle if line.strip()][:8]
    good = []
    for i, doc in enumerate(docs):
        path = folder / f"doc{i}.txt"
        path.write_text(doc, encoding="utf-8")
        good.append(path)
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02\x03 binary")
    return good, {"latin1.txt": "not valid utf-8 text", "binary.txt": "binary data"}


MAKERS = {"image": _images, "audio": _audio, "text": _texts}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_index_keeps_good_files_and_reports_every_bad_one(kind, tmp_path, capfd, monkeypatch):
    folder = tmp_path / kind
    folder.mkdir()
    good, bad = MAKERS[kind](folder)
    out, failures = tmp_path / "p.skfk", tmp_path / "failures.json"
    proc = run("index", folder, "--kind", kind, "--out", out, "--failures", failures)
    assert proc.returncode == 0, proc.stderr
    assert f"indexed {len(good)} of {len(good) + len(bad)} {kind} files" in proc.stderr
    listed = {Path(f["file"]).name: f["reason"] for f in json.loads(failures.read_text())}
    assert set(listed) == set(bad)
    for name, words in bad.items():
        assert words in listed[name] and f"failed: {folder / name}" in proc.stderr
    assert "libmpg123" not in proc.stderr and "Illegal Audio-MPEG-Header" not in proc.stderr

    # the same file used by the next commands, run in this process (what the user
    # sees on the terminal: capfd reads file descriptors 1 and 2, C libraries' too)
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = run_here(capfd, "query", out, good[1], "-k", "3",
                                      "--format", "json")
    assert status == 0, stderr
    (answer,) = json.loads(stdout)
    files = [r["file"] for r in answer["results"]]
    assert answer["query"] == str(good[1]) and str(good[1]) in files[:2]  # absolute paths
    assert answer["results"][0]["distance"] < 1e-6  # itself (or its mirror image: a tie)
    assert not set(files) & {str(folder / name) for name in bad}

    status, stdout, _ = run_here(capfd, "info", out, "--format", "json")
    assert status == 0 and json.loads(stdout)["items"] == len(good)
    status, _, stderr = run_here(capfd, "index", folder, "--kind", kind, "--out", out,
                                 "--strict", "--quiet")
    assert status == 1 and "libmpg123" not in stderr


def test_add_extends_the_index_and_its_keys(tmp_path, capsys):
    folder, extra = tmp_path / "docs", tmp_path / "more"
    folder.mkdir()
    extra.mkdir()
    good, _ = _texts(folder)
    for path in good[5:]:
        path.rename(extra / path.name)
    out = tmp_path / "p.skfk"
    assert main(["index", str(folder), "--kind", "text", "--out", str(out), "--quiet"]) == 0
    proc = run("add", out, extra, folder)  # files already indexed are skipped
    assert proc.returncode == 0, proc.stderr
    assert "added 3 of 5 files; the index holds 8 items" in proc.stderr  # 2 bad ones again
    status, stdout, _ = run_here(capsys, "query", out, extra / good[6].name, "-k", "1",
                                 "--format", "csv")
    assert status == 0 and stdout.splitlines()[1].endswith(str(extra / good[6].name))


def test_pipelines_are_safe_files_and_pickles_need_trust(tmp_path, capsys):
    from skfindkit import io as skio

    folder = tmp_path / "docs"
    folder.mkdir()
    good, _ = _texts(folder)
    safe, pickle = tmp_path / "p.skfk", tmp_path / "p.joblib"
    assert main(["index", str(folder), "--kind", "text", "--out", str(safe), "--quiet"]) == 0
    assert skio.file_kind(safe) == "safe" and skio.load(safe)[-1].n_samples_fit_ == 8
    assert main(["index", str(folder), "--kind", "text", "--out", str(pickle)]) == 0
    assert "will be a pickle (joblib), which runs code" in capsys.readouterr().err
    assert skio.file_kind(pickle) == "pickle"
    for command in (["query", str(pickle), str(good[0])], ["info", str(pickle)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pickle/joblib file, which can run any code" in err
        assert main([*command, "--trust-pickle"]) == 0
    (folder / "extra.txt").write_text("one more document about the weather")
    assert main(["add", str(pickle), str(folder), "--trust-pickle", "--quiet"]) == 0
    assert skio.file_kind(pickle) == "pickle"  # saved back in the format it had
    assert main(["add", str(safe), str(folder), "--quiet"]) == 0
    assert skio.file_kind(safe) == "safe" and skio.load(safe)[-1].n_samples_fit_ == 9


def test_doc2vec_needs_a_joblib_output_and_says_so_before_any_work(tmp_path, capsys):
    pytest.importorskip("gensim")
    folder = tmp_path / "docs"
    folder.mkdir()
    good, _ = _texts(folder)
    out = tmp_path / "p.skfk"
    assert main(["index", str(folder), "--kind", "text", "--features", "doc2vec",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out pipeline.joblib" in err and "safe format" in err
    assert not out.exists() and "indexed" not in err
    out = tmp_path / "p.joblib"
    assert main(["index", str(folder), "--kind", "text", "--features", "doc2vec",
                 "--out", str(out), "--quiet"]) == 0
    assert main(["query", str(out), str(good[1]), "-k", "1", "--trust-pickle"]) == 0


def test_nothing_loaded_exits_1_with_every_reason(tmp_path):
    (tmp_path / "a.png").write_bytes(b"garbage")
    (tmp_path / "b.png").write_bytes(b"")
    proc = run("index", tmp_path, "--kind", "image", "--out", tmp_path / "p.skfk")
    assert proc.returncode == 1
    assert "a.png" in proc.stderr and "b.png" in proc.stderr
    assert "no file could be loaded" in proc.stderr
    assert not (tmp_path / "p.skfk").exists()


@pytest.mark.parametrize("out", ["{tmp}", "/dev/full", "{tmp}/file.txt/p.skfk",
                                 "{tmp}/missing/p.skfk"])
def test_bad_out_is_refused_before_any_work(out, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a regular file")
    (tmp_path / "doc.txt").write_text("some words")
    status = main(["index", str(tmp_path), "--kind", "text", "--out", out.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("skfindkit: error: --out") and err.count("\n") == 1
    assert "indexed" not in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root can write in a read-only folder")
def test_unwritable_out_folder_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        status = main(["index", str(tmp_path), "--kind", "text", "--out", str(locked / "p")])
    finally:
        locked.chmod(0o700)
    assert status == 2 and "cannot write" in capsys.readouterr().err


def test_usage_errors_name_the_option(tmp_path, capsys):
    status, _, err = run_here(capsys, "query", tmp_path / "p.skfk", "q.png", "-k", "0")
    assert status == 2 and "k must be >= 1" in err
    status, _, err = run_here(capsys, "query", tmp_path / "missing.skfk", "q.png")
    assert status == 2
    assert err.strip() == (f"skfindkit: error: no such pipeline file: "
                           f"'{tmp_path / 'missing.skfk'}'")
    status, _, err = run_here(capsys, "index", tmp_path, "--kind", "image", "--features",
                              "nope", "--out", tmp_path / "p.skfk")
    assert status == 2 and "unknown image feature set 'nope'" in err


def test_help_lists_the_choices(capsys):
    status, out, _ = run_here(capsys, "index", "--help")
    assert status == 0
    for word in ("--features", "hog", "mel", "tfidf", "--metric", "cosine", "--index",
                 "hnsw", "faiss", "--encoding", "--strict", "--failures"):
        assert word in out


def test_missing_extra_is_one_line_with_an_install_command(tmp_path):
    (tmp_path / "doc.txt").write_text("words and more words")
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'hnswlib': raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from skfindkit.cli import main\n"
        f"sys.exit(main(['index', {str(tmp_path)!r}, '--kind', 'text', '--index', 'hnsw',"
        f" '--out', {str(tmp_path / 'p.skfk')!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", blocker], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("skfindkit: error: 'hnswlib'") and "pip install " in line
    assert "[hnswlib]" in line


def test_install_command_fits_the_installation():
    from skfindkit.utils._optional import install_command

    import skfindkit

    command = install_command("audio")
    if Path(skfindkit.__file__).resolve().parents[1] == ROOT:  # run from this checkout
        assert command == f"pip install -e '{ROOT}[audio]'"
    else:  # an installed copy: from an index, or from a folder that pip recorded
        assert command.startswith("pip install ") and "[audio]" in command


def test_query_gallery_is_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "img"
    folder.mkdir()
    good, _ = _images(folder)
    out = tmp_path / "p.skfk"
    assert main(["index", str(folder), "--kind", "image", "--out", str(out), "--quiet"]) == 0
    status, _, err = run_here(capsys, "query", out, good[0], good[2], "-k", "3",
                              "--gallery", tmp_path / "g.png")
    assert status == 0 and (tmp_path / "g.png").stat().st_size > 10_000, err


def test_audio_default_finds_a_tone_under_faint_noise(tmp_path, capsys):
    pytest.importorskip("librosa")
    import soundfile as sf

    from .._audio_fixtures import synth

    folder = tmp_path / "sounds"
    folder.mkdir()
    write_dataset(folder, n_per_family=4)
    tone = synth("tone", 0)
    noise = np.random.RandomState(1).randn(tone.size).astype(np.float32)
    noise *= np.sqrt(np.mean(tone**2) / np.mean(noise**2)) * 10 ** (-37 / 20)  # 37 dB SNR
    sf.write(tmp_path / "query.wav", tone + noise, 22050)
    out = tmp_path / "p.skfk"
    assert main(["index", str(folder), "--kind", "audio", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["query", str(out), str(tmp_path / "query.wav"), "-k", "3"]) == 0
    found = [Path(line.split("\t")[2]).name for line in capsys.readouterr().out.splitlines()[1:]]
    assert found[0] == "tone_0.wav" and all(name.startswith("tone_") for name in found)


def test_small_folders_start_no_workers():
    from skfindkit._cli_io import MIN_FILES_PER_WORKER, effective_jobs

    assert effective_jobs(2, 12) == 1 and effective_jobs(-1, 10) == 1
    assert effective_jobs(2, 2 * MIN_FILES_PER_WORKER) == 2
    assert effective_jobs(None, 10_000) is None  # the loader's own default: one job


def test_query_mmap_answers_as_a_read_and_maps_a_verified_file_without_rehashing(
        tmp_path, capsys, monkeypatch):
    from skfindkit.utils import _safe_file, _verified

    folder = tmp_path / "docs"
    folder.mkdir()
    good, _ = _texts(folder)
    out = tmp_path / "p.skfk"
    assert main(["index", str(folder), "--kind", "text", "--out", str(out), "--quiet"]) == 0
    monkeypatch.setattr(_verified, "SETTLED_NS", 0)  # the 2 s rule: tests/utils/test_verified.py
    hashed, real_hash = [], _safe_file.hash_mapped

    def counted(*args):
        hashed.append(args)
        return real_hash(*args)

    monkeypatch.setattr(_safe_file, "hash_mapped", counted)
    answers = [run_here(capsys, "query", out, good[2], "-k", "3", "--format", "json", *mmap)
               for mmap in ([], ["--mmap"], ["--mmap"])]
    assert answers[0] == answers[1] == answers[2] and answers[0][0] == 0
    if _verified.file_system(os.stat(out)) in _verified.WRITEBACK_FILE_SYSTEMS:
        assert len(hashed) == 1  # the second mapped query found the record
    else:  # no records on a tmpfs: tests/utils/test_verified.py
        assert len(hashed) == 2

