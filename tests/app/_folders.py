"""Small folders of files of each kind, as a new user would index them."""

import numpy as np


def write_faces(root, n_people=3, n_each=3):
    """``root/sN/M.pgm``: grey portraits (one texture per person), like a faces set."""
    from PIL import Image

    rng = np.random.RandomState(0)
    paths = []
    for person in range(n_people):
        base = rng.rand(28, 23)
        for shot in range(n_each):
            folder = root / f"s{person + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            picture = np.clip(base + 0.1 * rng.rand(28, 23), 0, 1)
            path = folder / f"{shot + 1}.pgm"
            Image.fromarray((255 * picture).astype(np.uint8)).save(path)
            paths.append(path)
    return paths


def write_texts(root):
    """A few short text files on three topics."""
    topics = {"cats": "cat kitten purr whiskers meow", "ships": "ship sail harbour anchor",
              "bread": "bread flour oven yeast dough"}
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for topic, words in topics.items():
        for i in range(2):
            path = root / f"{topic}_{i}.txt"
            path.write_text(f"A note about {topic}: {words}. Number {i}.\n", encoding="utf-8")
            paths.append(path)
    return paths


def write_sounds(root):
    """A few synthesized WAV and FLAC clips (tones, chirps)."""
    import soundfile as sf

    from .._audio_fixtures import synth

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for family in ("tone", "chirp"):
        for variant, fmt in enumerate(("WAV", "FLAC")):
            path = root / f"{family}_{variant}.{fmt.lower()}"
            sf.write(path, synth(family, variant, seconds=0.4), 22050, format=fmt)
            paths.append(path)
    return paths


WRITERS = {"image": write_faces, "text": write_texts, "audio": write_sounds}
