"""Which feature set should ``skfindkit index`` use by default? Measure it.

Builds labelled collections of several families per kind from data that ships
with packages or is synthesized (no downloads), writes them as files, indexes
each with every feature set of ``skfindkit.features`` (the very pipelines the
CLI builds) and reports, per family and feature set, precision@k (k = other
members of the item's group), P@1 and the time to index the folder, then the
mean P@k over each kind's families, on which the CLI's default is chosen:

* images: photos under edits (20 ``skimage.data`` pictures, each mirrored,
  cropped, noisy, brighter, slightly rotated), objects under rotation (16
  ``skimage.data`` pictures turned by 0-180 degrees), faces
  (``skimage.data.lfw_subset()`` under photographic changes, with face and
  non-face distractors), textures and scenes (tiles of 10 ``skimage.data``
  surfaces);
* audio: the same 12 words from 5 espeak-ng voices (skipped, with a note,
  when espeak-ng is not installed), and 9 classes of environmental sounds
  synthesized with numpy, 6 random instances each;
* text: 30 documents of gensim's Lee corpus, each with 4 edited copies
  (40 % of words dropped, first 30 %, last 30 %, two random sentences with
  typos in a third of the words, lower case), plus 100 other Lee documents as
  distractors that are never queried.

Every item of a group is a query; its relevant items are the other members
of the group (self excluded: ``kneighbors()`` on the fitted index).

Run: ``python benchmarks/bench_defaults.py [--out benchmarks/results/defaults.md]``
(without ``--out`` it prints the table only); ``--quick`` indexes 2 groups per
family (3 text distractors, no spoken words) and writes into a temporary folder
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

# ------------------------------------------------------------------ images
OBJECTS = ("astronaut", "camera", "cat", "chelsea", "coffee", "coins", "rocket", "clock",
           "horse", "logo", "colorwheel", "retina", "page", "text", "cell", "moon")
TEXTURES = ("brick", "grass", "gravel", "moon", "hubble_deep_field", "immunohistochemistry",
            "retina", "cell", "page", "coins")


def _rgb(image):
    """An skimage.data picture as float RGB in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    return image.astype(np.float64) / (255 if image.dtype.kind in "ui" else 1)


def _save_images(root, items):
    """``items``: (name, group, float RGB) -> PNG files; (paths, groups)."""
    from PIL import Image

    paths, groups = [], []
    for name, group, pixels in items:
        path = os.path.join(root, f"{name}.png")
        Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
        groups.append(group)
    return paths, np.array(groups)


EDITED = ("astronaut", "camera", "cat", "coffee", "coins", "moon", "page", "rocket", "text",
          "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
          "colorwheel", "retina", "clock", "cell", "horse", "logo")


def write_edits(root, n_groups=None):
    """Photos under edits: 20 ``skimage.data`` pictures, each with 5 edited copies (mirror,
    80 % centre crop, Gaussian noise, +30 % brightness, 8 degree rotation); one group per
    picture."""
    from skimage import data
    from skimage.transform import resize, rotate

    rng = np.random.RandomState(0)
    items = []
    for g, name in enumerate(EDITED[:n_groups]):
        img = _rgb(getattr(data, name)())
        h, w = img.shape[:2]
        ch, cw = int(0.1 * h), int(0.1 * w)
        variants = {"orig": img, "mirror": img[:, ::-1],
                    "crop": resize(img[ch:h - ch, cw:w - cw], img.shape, anti_aliasing=True),
                    "noise": img + rng.normal(0, 0.05, img.shape), "bright": img * 1.3,
                    "rotate": rotate(img, 8, mode="reflect")}
        items += [(f"{name}_{v}", g, pixels) for v, pixels in variants.items()]
    return (*_save_images(root, items), [])


def write_objects(root, n_groups=None):
    """Objects under rotation: each picture turned by 0, 15, 30, 60, 90 and 180 degrees
    (corners filled by reflection), one group per picture."""
    from skimage import data
    from skimage.transform import rotate

    items = []
    for g, name in enumerate(OBJECTS[:n_groups]):
        image = _rgb(getattr(data, name)())
        for angle in (0, 15, 30, 60, 90, 180):
            items.append((f"{name}_rot{angle}", g, rotate(image, angle, mode="reflect")))
    return (*_save_images(root, items), [])


def write_faces(root, n_groups=None):
    """Faces: ``skimage.data.lfw_subset()`` (25 x 25 crops of Labeled Faces in the Wild,
    shipped with scikit-image) upscaled to 100 x 100; 20 faces, each with 5 photographic
    changes (mirror, 10 degree turn, darker with more contrast, sensor noise, a shifted
    crop), are the queries; 30 other faces and 30 of the subset's non-faces are
    distractors, never queried. No identity labels ship offline: a group is one photo."""
    from skimage import data
    from skimage.transform import resize, rotate

    rng = np.random.RandomState(0)
    pictures = data.lfw_subset()
    faces, others = pictures[:100], pictures[100:]
    n_groups = 20 if n_groups is None else n_groups
    n_distractors = 30 if n_groups >= 20 else n_groups

    def big(face):
        return np.stack([resize(face, (100, 100), order=3, anti_aliasing=False)] * 3, axis=-1)

    items = []
    for g, face in enumerate(faces[:n_groups]):
        img = big(face)
        variants = {"orig": img, "mirror": img[:, ::-1],
                    "turn": rotate(img, 10, mode="reflect"),
                    "contrast": np.clip((img - 0.5) * 1.4 + 0.4, 0, 1) ** 1.3,
                    "noise": img + rng.normal(0, 0.04, img.shape),
                    "shift": resize(img[8:, 6:96], img.shape, anti_aliasing=True)}
        items += [(f"face{g:03d}_{v}", g, pixels) for v, pixels in variants.items()]
    rest = list(faces[n_groups:n_groups + n_distractors]) + list(others[:n_distractors])
    items += [(f"other{i:03d}_x", -1 - i, big(x)) for i, x in enumerate(rest)]
    return (*_save_images(root, items), [])


def write_textures(root, n_groups=None):
    """Textures and scenes: six tiles (a 2 x 3 grid) of each of 10 ``skimage.data``
    pictures (brick, grass, gravel, the moon's surface, a deep-sky field, stained tissue,
    a retina, cells, a printed page, coins); one group per picture: the other tiles of
    the same surface are relevant."""
    from skimage import data

    items = []
    for g, name in enumerate(TEXTURES[:n_groups]):
        image = _rgb(getattr(data, name)())
        h, w = image.shape[:2]
        side = min(h // 2, w // 3)
        for r in range(2):
            for c in range(3):
                items.append((f"{name}_tile{r}{c}", g,
                              image[r * side:(r + 1) * side, c * side:(c + 1) * side]))
    return (*_save_images(root, items), [])


# ------------------------------------------------------------------- audio
SR = 22050
WORDS = ("seven", "window", "banana", "yesterday", "music", "river", "purple", "engine",
         "table", "orange", "garden", "thunder")
# espeak-ng voice (+variant), words per minute, pitch (0-99): five speakers
VOICES = (("en-us", 160, 50), ("en-gb+f3", 140, 70), ("en-gb-scotland+m3", 185, 35),
          ("en-029+f2", 125, 60), ("en-gb-x-rp+m7", 200, 25))


def _espeak():
    return shutil.which("espeak-ng") or shutil.which("espeak")


def write_voices(root, n_groups=None):
    """The same words from different voices: each of 12 words spoken by 5 espeak-ng
    voices (male and female variants, 125-200 words per minute, pitch 25-70); one group
    per word."""
    import soundfile as sf

    exe = _espeak()
    if exe is None:
        return [], np.array([], dtype=int), ["espeak-ng is not installed: no spoken words"]
    paths, groups = [], []
    for g, word in enumerate(WORDS[:n_groups]):
        for v, (voice, speed, pitch) in enumerate(VOICES):
            path = os.path.join(root, f"{word}_voice{v}.wav")
            subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path,
                            word], check=True, capture_output=True)
            y, rate = sf.read(path, dtype="float32")
            sf.write(path, y / max(np.max(np.abs(y)), 1e-6) * 0.5, rate)
            paths.append(path)
            groups.append(g)
    return paths, np.array(groups), [f"voices: espeak-ng {', '.join(v for v, _, _ in VOICES)}"]


def _decay(t, start, tau):
    return np.where(t >= start, np.exp(-(t - start) / tau), 0.0)


def _event(kind, rng):
    """One random instance of an environmental sound class (1.5-2.5 s at ``SR``)."""
    t = np.arange(int(SR * rng.uniform(1.5, 2.5))) / SR
    noise = rng.randn(t.size)
    if kind == "siren":
        f = rng.uniform(600, 900) + rng.uniform(150, 300) * np.sin(
            2 * np.pi * rng.uniform(0.5, 2) * t)
        y = np.sin(2 * np.pi * np.cumsum(f) / SR)
    elif kind == "birds":
        y = np.zeros(t.size)
        for start in rng.uniform(0, t[-1] - 0.15, rng.randint(3, 7)):
            f0 = rng.uniform(2000, 3500)
            seg = (t >= start) & (t < start + 0.08)
            tt = t[seg] - start
            y[seg] += np.sin(2 * np.pi * (f0 * tt + rng.uniform(8e3, 15e3) * tt**2)) * np.hanning(
                seg.sum())
    elif kind == "engine":
        f0 = rng.uniform(30, 60)
        y = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 9))
        y *= 1 + 0.5 * np.sin(2 * np.pi * f0 / 2 * t)
        y += 0.3 * np.convolve(noise, np.ones(30) / 30, mode="same")
    elif kind == "rain":
        drops = (rng.rand(t.size) < rng.uniform(0.002, 0.006)) * rng.uniform(0.2, 1, t.size)
        y = np.convolve(drops, np.exp(-np.arange(60) / 8), mode="same") + 0.2 * noise
    elif kind == "bark":
        y = np.zeros(t.size)
        for start in np.sort(rng.uniform(0, t[-1] - 0.3, rng.randint(2, 5))):
            f0 = rng.uniform(350, 600)
            env = _decay(t, start, 0.06) * (t < start + 0.25)
            y += env * sum(np.sin(2 * np.pi * k * f0 * t) * np.exp(-((k * f0 - 900) / 600) ** 2)
                           for k in range(1, 8))
    elif kind == "knock":
        y = np.zeros(t.size)
        f0 = rng.uniform(150, 300)
        for start in np.sort(rng.uniform(0, t[-1] - 0.2, rng.randint(2, 6))):
            y += _decay(t, start, 0.02) * np.sin(2 * np.pi * f0 * (t - start))
    elif kind == "wind":
        low = np.convolve(noise, np.ones(200) / 200, mode="same")
        y = low * (1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6)))
    elif kind == "alarm":
        f0, period = rng.uniform(1000, 3000), rng.uniform(0.2, 0.5)
        y = np.sign(np.sin(2 * np.pi * f0 * t)) * ((t % period) < period / 2)
    else:  # water drops: short decaying tones whose pitch rises
        y = np.zeros(t.size)
        for start in rng.uniform(0, t[-1] - 0.1, rng.randint(4, 10)):
            f0 = rng.uniform(800, 1600)
            tt = np.clip(t - start, 0, None)
            y += _decay(t, start, 0.03) * np.sin(2 * np.pi * (f0 * tt + 4000 * tt**2))
    y = y / max(np.max(np.abs(y)), 1e-9)
    y += rng.randn(t.size) * 10 ** (-rng.uniform(15, 35) / 20) * np.sqrt(np.mean(y**2))
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


SOUNDS = ("siren", "birds", "engine", "rain", "bark", "knock", "wind", "alarm", "drops")


def write_sounds(root, n_groups=None):
    """Environmental sounds synthesized with numpy: 6 random instances of each of 9
    classes (siren, bird chirps, engine, rain, barks, knocks, wind, alarm beeps, water
    drops) with random pitch, timing, length (1.5-2.5 s) and background noise (15-35 dB
    below the sound); one group per class."""
    import soundfile as sf

    rng = np.random.RandomState(0)
    paths, groups = [], []
    for g, kind in enumerate(SOUNDS[:n_groups]):
        for i in range(6):
            path = os.path.join(root, f"{kind}_{i}.wav")
            sf.write(path, _event(kind, rng), SR)
            paths.append(path)
            groups.append(g)
    return paths, np.array(groups), []


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
    """Lee corpus documents, each with 4 edited copies, plus distractors."""
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
# kind -> family -> writer(root, n_groups) -> (paths, groups: < 0 for distractors, notes)
FAMILIES = {
    "image": {"edits": write_edits, "objects": write_objects, "faces": write_faces,
              "textures": write_textures},
    "audio": {"voices": write_voices, "sounds": write_sounds},
    "text": {"lee": write_text},
}


def evaluate(kind, features, paths, groups):
    """P@k (mean over queries, k = each query's group size - 1), P@1, CPU and wall s."""
    pipeline = build_pipeline(kind, features)
    start, cpu = time.perf_counter(), time.process_time()
    pipeline.fit(paths)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    queried = np.flatnonzero(groups >= 0)
    sizes = {g: int(np.sum(groups == g)) for g in set(groups[queried].tolist())}
    _, ind = pipeline[-1].kneighbors(n_neighbors=max(sizes.values()) - 1)
    p_k = [np.mean(groups[ind[q, :sizes[groups[q]] - 1]] == groups[q]) for q in queried]
    p_1 = [groups[ind[q, 0]] == groups[q] for q in queried]
    return float(np.mean(p_k)), float(np.mean(p_1)), cpu, seconds


def best_by_mean(rows):
    """kind -> (feature set with the best mean P@k over the kind's families, mean)."""
    means = {}
    for kind, family, name, *_, p_k, _p1, _cpu, _s in rows:
        means.setdefault(kind, {}).setdefault(name, []).append(p_k)
    return {kind: max(((name, float(np.mean(v))) for name, v in by.items()), key=lambda x: x[1])
            for kind, by in means.items()}


def main(argv=None):
    options = parser(__doc__, repeats=None)
    options.add_argument("--kinds", nargs="+", default=list(FAMILIES))
    options.add_argument("--families", nargs="+", default=None,
                         help="only these families (default: every family of the kinds)")
    options.add_argument("--groups", type=int, default=None,
                         help="groups per family (default: all)")
    options.add_argument("--distractors", type=int, default=None,
                         help="text documents never queried (default: 100)")
    args = parse(options, argv, groups=2, distractors=3)
    rows, notes = [], []
    for kind in args.kinds:
        for family, writer in FAMILIES[kind].items():
            if args.families is not None and family not in args.families:
                continue
            if args.quick and family == "voices":
                continue  # needs espeak-ng and minutes of speech synthesis
            with tempfile.TemporaryDirectory() as root:
                if kind == "text":
                    paths, groups, family_notes = writer(root, args.groups, args.distractors)
                else:
                    paths, groups, family_notes = writer(root, args.groups)
                notes += [f"{kind} / {family}: {n}" for n in family_notes]
                if not len(paths):
                    continue
                n_groups = len(set(groups[groups >= 0].tolist()))
                for name in FEATURE_SETS[kind]:
                    if name == "keras":
                        continue  # needs a user's weights file (no downloads here)
                    p_k, p_1, cpu, seconds = evaluate(kind, name, paths, groups)
                    rows.append((kind, family, name, len(paths), n_groups, p_k, p_1, cpu,
                                 seconds))
                    print(f"{kind:6s} {family:9s} {name:16s} P@k={p_k:.3f} P@1={p_1:.3f} "
                          f"cpu {cpu:.1f} s wall {seconds:.1f} s ({len(paths)} files)",
                          flush=True)
    text = markdown(rows, notes, argv if argv is not None else sys.argv[1:])
    print(text)
    write_results(args, "defaults.md", text, record=False)


def _label(kind, name):
    return name + (" **(default)**" if name == DEFAULT_FEATURES[kind] else "")


def markdown(rows, notes, argv=()):
    """The results as a Markdown page: per family, then the mean over families."""
    best = best_by_mean(rows)
    lines = [
        "# Default feature sets of `skfindkit index`, measured",
        "",
        f"Command: `python benchmarks/bench_defaults.py {' '.join(argv)}` "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine_text('scikit-image', 'librosa', 'gensim')} (shared with other "
        "jobs while measured: times are indicative).",
        "",
        "Families (all made offline from data that ships with packages or is synthesized):",
        "",
        *[f"- {kind} / {family}: {' '.join((writer.__doc__ or '').split())}"
          for kind, families in FAMILIES.items() for family, writer in families.items()],
        "",
        "Every non-distractor item is a query; relevant = the other members of its group "
        "(self excluded). P@k with k = group size - 1; P@1: the share of queries whose "
        "nearest other item is from their group; CPU / wall = indexing the whole folder "
        "(load + features + index), one job. The CLI's default per kind is the feature set "
        "with the best mean P@k over that kind's families.",
        "",
        "## Mean P@k over families (the default is chosen on the last column)",
        "",
    ]
    families = {}
    for kind, family, *_ in rows:
        families.setdefault(kind, [])
        if family not in families[kind]:
            families[kind].append(family)
    for kind, fams in families.items():
        lines += [f"| {kind} feature set | " + " | ".join(f"{f} P@k" for f in fams)
                  + " | mean P@k |", "|---|" + "---:|" * (len(fams) + 1)]
        table = {}
        for k, family, name, *_, p_k, _p1, _cpu, _s in rows:
            if k == kind:
                table.setdefault(name, {})[family] = p_k
        for name, by in sorted(table.items(), key=lambda x: -np.mean(list(x[1].values()))):
            mean = np.mean(list(by.values()))
            mark = " (best)" if name == best[kind][0] else ""
            lines.append(f"| {_label(kind, name)} | "
                         + " | ".join(f"{by[f]:.3f}" if f in by else "" for f in fams)
                         + f" | {mean:.3f}{mark} |")
        lines.append("")
    lines += ["## Per family", "",
              "| kind | family | feature set | files | groups | P@k | P@1 | CPU (s) | wall (s) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for kind, family, name, n, g, p_k, p_1, cpu, seconds in rows:
        lines.append(f"| {kind} | {family} | {_label(kind, name)} | {n} | {g} | {p_k:.3f} | "
                     f"{p_1:.3f} | {cpu:.1f} | {seconds:.1f} |")
    lines += ["", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
