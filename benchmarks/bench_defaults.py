"""Which feature set should ``skfindkit index`` use by default? Measure it.

Builds three small labelled collections from data that ships with packages
(no downloads), writes them as files, indexes each with every feature set of
``skfindkit.features`` (the very pipelines the CLI builds) and reports, per
feature set, precision@k (k = other members of the item's group), P@1 and the
time to index the folder:

* images: 20 ``skimage.data`` pictures, each with 5 edited copies (mirror,
  80 % centre crop, Gaussian noise, +30 % brightness, 8 degree rotation);
* audio: 16 synthesized sounds (tones, chords, sweeps, noise bands, click
  trains, AM/FM) and, when espeak-ng is installed, 8 spoken words, each with
  4 edited copies (noise at 20 dB SNR, level x0.25, rate x1.06, 48 kHz stereo
  with 0.3 s of faint noise around it);
* text: 30 documents of gensim's Lee corpus, each with 4 edited copies
  (40 % of words dropped, first 30 %, last 30 %, two random sentences with
  typos in a third of the words, lower case),
  plus 100 other Lee documents as distractors that are never queried.

Every item of a group is a query; its relevant items are the other members
of the group (self excluded: ``kneighbors()`` on the fitted index).

Run: ``python benchmarks/bench_defaults.py [--out benchmarks/results/defaults.md]``
(without ``--out`` it prints the table only); ``--quick`` indexes 3 groups per
kind (5 text distractors, no spoken words) and writes into a temporary folder
unless ``--out`` is given.
"""

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import machine_text, parse, parser, write_results

from skfindkit.features import DEFAULT_FEATURES, FEATURE_SETS, build_pipeline

IMAGES = ("astronaut", "camera", "cat", "coffee", "coins", "moon", "page", "rocket", "text",
          "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
          "colorwheel", "retina", "clock", "cell", "horse", "logo")


# ------------------------------------------------------------------ images
def _image_variants(image, rng):
    from skimage.transform import resize, rotate

    img = image.astype(np.float64) / 255
    h, w = img.shape[:2]
    ch, cw = int(0.1 * h), int(0.1 * w)
    crop = resize(img[ch:h - ch, cw:w - cw], img.shape, anti_aliasing=True)
    return {
        "orig": img,
        "mirror": img[:, ::-1],
        "crop": crop,
        "noise": np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1),
        "bright": np.clip(img * 1.3, 0, 1),
        "rotate": rotate(img, 8, mode="reflect"),
    }


def write_images(root, n_groups=None, n_distractors=None):
    from PIL import Image
    from skimage import data

    rng = np.random.RandomState(0)
    paths, groups = [], []
    for g, name in enumerate(IMAGES[:n_groups]):
        image = np.asarray(getattr(data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        image = image[..., :3]
        for variant, pixels in _image_variants(image, rng).items():
            path = os.path.join(root, f"{name}_{variant}.png")
            Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path)
            paths.append(path)
            groups.append(g)
    return paths, np.array(groups), []


# ------------------------------------------------------------------- audio
SR = 22050


def _synth(index, seconds=1.0):
    rng = np.random.RandomState(index)
    t = np.arange(int(SR * seconds)) / SR
    kind = index % 8
    f0 = 150 * 2 ** (index / 5)
    if kind == 0:  # harmonic tone
        y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    elif kind == 1:  # chord
        y = sum(np.sin(2 * np.pi * f0 * r * t) for r in (1, 1.26, 1.5))
    elif kind == 2:  # sweep
        y = np.sin(2 * np.pi * (f0 * t + 2000 * t**2))
    elif kind == 3:  # band of noise
        spec = np.fft.rfft(rng.randn(t.size))
        freqs = np.fft.rfftfreq(t.size, 1 / SR)
        spec[(freqs < f0 * 2) | (freqs > f0 * 6)] = 0
        y = np.fft.irfft(spec, t.size)
    elif kind == 4:  # click train
        y = np.zeros(t.size)
        y[:: int(SR / (6 + index))] = 1
        y = np.convolve(y, np.hanning(48), mode="same")
    elif kind == 5:  # amplitude-modulated tone
        y = np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * (3 + index % 5) * t))
    elif kind == 6:  # vibrato
        y = np.sin(2 * np.pi * f0 * t + 8 * np.sin(2 * np.pi * 5 * t))
    else:  # decaying plucked string (Karplus-Strong-like)
        y = sum(np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * 3 * k) for k in range(1, 8))
    return (y / np.max(np.abs(y)) * 0.5).astype(np.float32)


def _spoken(words, root):
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        return []
    import soundfile as sf

    clips = []
    for word in words:
        path = os.path.join(root, "_espeak.wav")
        subprocess.run([exe, "-w", path, word], check=True, capture_output=True)
        y, rate = sf.read(path, dtype="float32")
        if rate != SR:
            import librosa

            y = librosa.resample(y, orig_sr=rate, target_sr=SR)
        clips.append(y / np.max(np.abs(y)) * 0.5)
        os.remove(path)
    return clips


def _audio_variants(y, rng):
    import librosa

    noise = rng.randn(y.size).astype(np.float32)
    noise *= np.sqrt(np.mean(y**2) / np.mean(noise**2)) / 10  # 20 dB SNR
    pad = (0.002 * rng.randn(int(0.3 * 48000))).astype(np.float32)
    y48 = librosa.resample(y, orig_sr=SR, target_sr=48000)
    stereo = np.concatenate([pad, y48 * 0.8, pad])
    return {
        "orig": (y, SR),
        "noise": (y + noise, SR),
        "quiet": (0.25 * y, SR),
        "rate": (librosa.resample(y, orig_sr=SR, target_sr=int(SR / 1.06)), SR),
        "stereo48k": (np.stack([stereo, 0.9 * stereo], axis=1), 48000),
    }


def write_audio(root, n_groups=None, n_distractors=None):
    import soundfile as sf

    rng = np.random.RandomState(0)
    clips = [_synth(i) for i in range(16 if n_groups is None else n_groups)]
    words = ("seven", "window", "banana", "yesterday", "music", "river", "purple", "engine")
    spoken = _spoken(words, root) if n_groups is None else []
    paths, groups = [], []
    for g, y in enumerate(clips + spoken):
        for variant, (wave, rate) in _audio_variants(y, rng).items():
            path = os.path.join(root, f"sound{g:02d}_{variant}.wav")
            sf.write(path, wave, rate)
            paths.append(path)
            groups.append(g)
    notes = [f"{len(spoken)} espeak-ng words" if spoken else "synthesized sounds only" + (
        ": espeak-ng not installed" if n_groups is None else "")]
    return paths, np.array(groups), notes


# -------------------------------------------------------------------- text
def _typos(text, rng):
    words = text.lower().split()
    for i in rng.sample(range(len(words)), k=max(1, len(words) // 3)):
        w = words[i]
        if len(w) > 3:
            j = rng.randrange(len(w) - 1)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def _text_variants(text, rng):
    words = text.split()
    sentences = re.split(r"(?<=[.!?])\s+", text)
    n = len(words)
    return {
        "orig": text,
        "drop": " ".join(w for w in words if rng.random() > 0.4),
        "head": " ".join(words[: max(5, int(0.3 * n))]),
        "tail": " ".join(words[-max(5, int(0.3 * n)):]),
        "typos": _typos(" ".join(rng.sample(sentences, k=min(2, len(sentences)))), rng),
    }


def write_text(root, n_groups=None, n_distractors=None):
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
        docs = [line.strip() for line in handle if len(line.split()) > 60]
    rng = random.Random(0)
    paths, groups = [], []
    n_groups = 30 if n_groups is None else n_groups
    n_distractors = 100 if n_distractors is None else n_distractors
    for g, doc in enumerate(docs[:n_groups]):
        for variant, text in _text_variants(doc, rng).items():
            path = os.path.join(root, f"doc{g:02d}_{variant}.txt")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            paths.append(path)
            groups.append(g)
    distractors = []
    for i, doc in enumerate(docs[n_groups:n_groups + n_distractors]):
        path = os.path.join(root, f"other{i:03d}.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(doc)
        distractors.append(path)
    return paths + distractors, np.array(groups + [-1 - i for i in range(len(distractors))]), []


# ----------------------------------------------------------------- measure
OLD_DEFAULTS = {"image": "pixels", "audio": "mfcc-segments", "text": "doc2vec"}


def evaluate(kind, features, paths, groups):
    """P@k, P@1, P@1 per edit (the variant in the file name), k, CPU and wall seconds."""
    pipeline = build_pipeline(kind, features)
    start, cpu = time.perf_counter(), time.process_time()
    pipeline.fit(paths)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    queried = np.flatnonzero(groups >= 0)
    k = int(np.sum(groups == groups[queried[0]])) - 1
    index = pipeline[-1]
    _, ind = index.kneighbors(n_neighbors=k)
    hits = groups[ind[queried]] == groups[queried, None]
    variants = np.array([os.path.splitext(paths[i])[0].rsplit("_", 1)[1] for i in queried])
    per_variant = {v: hits[variants == v, 0].mean() for v in dict.fromkeys(variants)}
    return hits.mean(), hits[:, 0].mean(), per_variant, k, cpu, seconds


def main():
    options = parser(__doc__, repeats=None)
    options.add_argument("--kinds", nargs="+", default=["image", "audio", "text"])
    options.add_argument("--groups", type=int, default=None,
                         help="groups per kind (default: all: 20 images, 16 + 8 sounds, 30 texts)")
    options.add_argument("--distractors", type=int, default=None,
                         help="text documents never queried (default: 100)")
    args = parse(options, groups=3, distractors=5)
    writers = {"image": write_images, "audio": write_audio, "text": write_text}
    rows, notes = [], []
    for kind in args.kinds:
        with tempfile.TemporaryDirectory() as root:
            paths, groups, kind_notes = writers[kind](root, args.groups, args.distractors)
            notes += [f"{kind}: {n}" for n in kind_notes]
            n_groups = len(set(groups[groups >= 0]))
            for name in FEATURE_SETS[kind]:
                if name == "keras":
                    continue  # needs a user's weights file (no downloads here)
                p_k, p_1, per_variant, k, cpu, seconds = evaluate(kind, name, paths, groups)
                label = name + (" **(default)**" if name == DEFAULT_FEATURES[kind] else
                                " (old default)" if name == OLD_DEFAULTS[kind] else "")
                rows.append((kind, label, len(paths), n_groups, k, p_k, p_1, per_variant,
                             cpu, seconds))
                print(f"{kind:6s} {label:28s} P@{k}={p_k:.3f} P@1={p_1:.3f} "
                      + " ".join(f"{v}={p:.2f}" for v, p in per_variant.items())
                      + f" cpu {cpu:.1f} s wall {seconds:.1f} s ({len(paths)} files)",
                      flush=True)
    write_results(args, "defaults.md", markdown(rows, notes), record=False)


def markdown(rows, notes):
    """The results as a Markdown page."""
    lines = [
        "# Default feature sets of `skfindkit index`, measured",
        "",
        f"Command: `python benchmarks/bench_defaults.py {' '.join(sys.argv[1:])}` "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine_text('scikit-image', 'librosa', 'gensim')} (shared with other "
        "jobs while measured: times are indicative).",
        "",
        "Every item of a group is a query; relevant = the other members of its group "
        "(self excluded). P@k with k = group size - 1; P@1 per edit: the share of queries "
        "of that edit whose nearest other item is from their group; CPU / wall = indexing "
        "the whole folder (load + features + index), one job (CPU seconds are the "
        "figure to compare on a shared machine).",
        "",
        "| kind | feature set | files | groups | k | P@k | P@1 | P@1 per edit | CPU (s) "
        "| wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for kind, name, n, g, k, p_k, p_1, per_variant, cpu, seconds in rows:
        edits = ", ".join(f"{v} {p:.2f}" for v, p in per_variant.items())
        lines.append(f"| {kind} | {name} | {n} | {g} | {k} | {p_k:.3f} | {p_1:.3f} | "
                     f"{edits} | {cpu:.1f} | {seconds:.1f} |")
    lines += ["", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
