"""Loader throughput: items/s with n_jobs=1 vs 2, and against a plain library loop.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_loaders.py [--n 200] [--repeats 3]
Writes benchmarks/results/loaders.md (machine, versions, command, table);
``--quick`` (2 files, 40 documents, 1 repeat, no warm-up) writes into a temporary folder
unless ``--out`` is given.
"""

import os
import sys
import tempfile

import numpy as np
from _common import audio_files, best_of_interleaved, machine_text, parse, parser, write_results


def image_files(root, n):
    from PIL import Image
    from skimage import data

    base = data.astronaut()
    paths = []
    for i in range(n):
        path = os.path.join(root, f"img{i:04d}.jpg")
        Image.fromarray(np.roll(base, i, axis=1)).save(path, quality=90)
        paths.append(path)
    return paths


def stft_loop(paths):
    import librosa

    out = []
    for path in paths:
        y, sr = librosa.load(path, sr=22050)
        S = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=1024, hop_length=512)),
                                    ref=1.0, amin=1e-5, top_db=None)
        out.append(np.r_[S.mean(axis=1), S.std(axis=1)])
    return np.array(out)


def essentia_loop(paths):
    import essentia

    essentia.log.infoActive = False
    import essentia.standard as es
    import librosa
    import soundfile as sf

    w, sp = es.Windowing(type="hann", size=2048), es.Spectrum(size=2048)
    mfcc = es.MFCC(inputSize=1025, sampleRate=44100, numberCoefficients=13)
    out = []
    for path in paths:
        y, sr = sf.read(path, dtype="float32")
        # the resampler the loader uses (librosa's default, soxr), so both do the same work
        y = librosa.resample(y, orig_sr=sr, target_sr=44100).astype(np.float32)
        # pooled in float64 like the loader (whose output is float64)
        frames = np.array([mfcc(sp(w(f)))[1] for f in
                           es.FrameGenerator(y, frameSize=2048, hopSize=1024, startFromZero=True)],
                          dtype=np.float64)
        out.append(np.r_[frames.mean(0), frames.std(0)])
    return np.array(out)


def image_loop(paths):
    from PIL import Image

    # scaled by float32(1/255) like the loader, so the outputs are identical
    return np.stack([
        np.asarray(Image.open(p).convert("RGB").resize((64, 64), Image.Resampling.BILINEAR),
                   dtype=np.float32) * np.float32(1 / 255) for p in paths
    ])


def doc2vec_loop(model, docs):
    from gensim.utils import simple_preprocess

    return np.array([model.infer_vector(simple_preprocess(d)) for d in docs])


def main():
    options = parser(__doc__, repeats=3)
    options.add_argument("--n", type=int, default=200, help="files per loader")
    options.add_argument("--docs", type=int, default=None,
                         help="documents of the Lee corpus (default: all)")
    options.add_argument("--epochs", type=int, default=20, help="Doc2Vec training epochs")
    args = parse(options, n=2, docs=40, epochs=2)

    from gensim.test.utils import datapath

    from skfindkit import Doc2VecLoader, EssentiaVectorLoader, ImageLoader, STFTVectorLoader

    tmp = tempfile.mkdtemp(prefix="skfindkit-bench-")
    wavs, jpgs = audio_files(tmp, args.n), image_files(tmp, args.n)
    with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
        docs = [d for d in handle.read().splitlines() if d.strip()][: args.docs]
    d2v = Doc2VecLoader(vector_size=100, epochs=args.epochs).fit(docs)
    cases = [
        ("STFTVectorLoader (log, mean+std)", "librosa.load + stft loop", wavs,
         lambda j: STFTVectorLoader(n_jobs=j).transform(wavs), lambda: stft_loop(wavs)),
        ("EssentiaVectorLoader (mfcc, mean+std)", "essentia MFCC loop", wavs,
         lambda j: EssentiaVectorLoader("mfcc", n_jobs=j).transform(wavs),
         lambda: essentia_loop(wavs)),
        ("ImageLoader (64x64 rgb)", "PIL open/resize loop", jpgs,
         lambda j: ImageLoader(n_jobs=j).transform(jpgs), lambda: image_loop(jpgs)),
        (f"Doc2VecLoader.transform (Lee, {len(docs)} docs)", "gensim infer_vector loop", docs,
         lambda j: d2v.set_params(n_jobs=j).transform(docs),
         lambda: doc2vec_loop(d2v.model_, docs)),
    ]
    rows = []
    for name, base_name, items, run, baseline in cases:
        if not args.quick:  # --quick only checks that the script runs
            run(2)  # warm the worker pool
        # n_jobs=2: steady-state throughput of warm workers, timed back to back;
        # n_jobs=1 against the loop: interleaved, so both see the same machine
        (t2,) = best_of_interleaved([lambda: run(2)], args.repeats)
        t1, tb = best_of_interleaved([lambda: run(1), baseline], args.repeats)
        n = len(items)
        rows.append(f"| {name} | {n} | {n / t1:.1f} | {n / t2:.1f} | {t1 / t2:.2f}x "
                    f"| {base_name}: {n / tb:.1f} | {tb / t1:.2f}x |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Loader throughput",
        "",
        f"- command: `{' '.join(['python'] + sys.argv)}`"
        f" (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})",
        "- machine: " + machine_text("librosa", "essentia", "gensim", "pillow"),
        f"- data: {args.n} synthesized 2 s mono WAVs at 22.05 kHz, {args.n} 512x512 JPEGs, "
        f"gensim's Lee background corpus; best of {args.repeats} runs: n_jobs=2 back to back "
        "after a warm-up run, then n_jobs=1 and the loop in turn",
        "",
        "| loader | items | items/s n_jobs=1 | items/s n_jobs=2 | speed-up | "
        "direct loop items/s | loader n_jobs=1 vs loop |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    write_results(args, "loaders.md", text)


if __name__ == "__main__":
    main()
