"""Synthesized audio for loader tests: pure numpy + soundfile, no downloads, no apt."""

import numpy as np

FAMILIES = ("tone", "chirp", "noise", "clicks")


def synth(family, variant, sr=22050, seconds=0.75):
    """One clip of ``family``; ``variant`` changes pitch, level and noise seed."""
    rng = np.random.RandomState(1000 * FAMILIES.index(family) + variant)
    t = np.arange(int(sr * seconds)) / sr
    level = 0.2 + 0.6 * rng.rand()
    if family == "tone":  # harmonic tone with a random fundamental
        f0 = rng.uniform(200, 400)
        y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 5))
    elif family == "chirp":  # rising sweep
        f0, f1 = rng.uniform(300, 600), rng.uniform(3000, 5000)
        y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    elif family == "noise":  # high-passed noise (first difference of white noise)
        y = np.diff(rng.randn(t.size + 1))
    else:  # click train
        y = np.zeros(t.size)
        period = int(sr / rng.uniform(8, 14))
        y[::period] = 1.0
        y = np.convolve(y, np.hanning(64), mode="same")
    y = y / np.max(np.abs(y)) * level
    return (y + 0.003 * rng.randn(t.size)).astype(np.float32)


def write_dataset(root, n_per_family=4, sr=22050, fmt="WAV"):
    """Write ``n_per_family`` clips per family; return (paths, labels)."""
    import soundfile as sf

    paths, labels = [], []
    for label, family in enumerate(FAMILIES):
        for variant in range(n_per_family):
            path = root / f"{family}_{variant}.{fmt.lower()}"
            sf.write(path, synth(family, variant, sr), sr, format=fmt)
            paths.append(str(path))
            labels.append(label)
    return paths, np.array(labels)


def write_bad_files(root, good_wav):
    """Paths of bad inputs (name -> path) for the audio loaders' error tests."""
    import soundfile as sf

    root.mkdir(exist_ok=True)
    empty = root / "empty.wav"
    empty.write_bytes(b"")
    fake = root / "fake.wav"
    fake.write_text("this is a text file, not RIFF audio\n" * 20)
    truncated = root / "truncated.wav"
    truncated.write_bytes(open(good_wav, "rb").read()[:30])
    silent = root / "silent.wav"
    sf.write(silent, np.zeros(22050, np.float32), 22050)
    short = root / "short.wav"
    sf.write(short, synth("tone", 0)[:500], 22050)
    return {
        "missing": (root / "missing.wav", "no such file"),
        "directory": (root, "is a directory"),
        "empty": (empty, "zero-byte"),
        "fake": (fake, "fake.wav.*decode"),
        "truncated": (truncated, "truncated.wav"),
        "silent": (silent, "silent"),
        "short": (short, "fewer than the frame length"),
    }
