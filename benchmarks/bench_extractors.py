"""Images/s of each skfindkit extractor against the raw framework call.

Same network, same batch size, same images: the extractor's ``transform``
versus the framework's own inference call on the same cut-off layer. Prints a
Markdown table (target: extractor >= 0.95x raw) and writes it to ``--out`` if
given.

Usage::

    python benchmarks/bench_extractors.py --frameworks keras --device cpu
    python benchmarks/bench_extractors.py --frameworks keras --device gpu  # TF with a GPU
    .venv-mxnet/bin/python benchmarks/bench_extractors.py --frameworks mxnet gluon
    python benchmarks/bench_extractors.py --quick  # 8 images 8x8, 1 repeat, temporary folder
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _common import best_of as _best_of  # noqa: E402
from _common import machine_text, parse, parser, write_results  # noqa: E402


def best_of(fn, repeat):
    """Best seconds of ``repeat`` calls of ``fn`` after one warm-up call (graph
    building, tracing, allocation)."""
    fn()
    return _best_of(fn, repeat)[0]


def _keras_device(keras, device):
    """Device scope and a label for Keras's backend (TensorFlow, or JAX on a GPU box)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.device("/GPU:0" if device == "gpu" else "/CPU:0"), f"tf {tf.__version__}"
    if backend == "jax":
        import jax

        dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        return jax.default_device(dev), f"jax {jax.__version__} on {dev.device_kind}"
    raise SystemExit(f"unsupported KERAS_BACKEND {backend!r} for this benchmark")


def bench_keras(X, batch_size, device, repeat):
    import keras

    from skfindkit import KerasFeatureExtractor

    scope, label = _keras_device(keras, device)
    with scope:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input(X.shape[1:]),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", padding="same", name="conv2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, name="out"),
        ])
        ext = KerasFeatureExtractor(model, layer="conv2", batch_size=batch_size).fit(X[:1])
        sub = keras.Model(model.inputs, model.get_layer("conv2").output)
        raw = best_of(lambda: sub.predict(X, batch_size=batch_size, verbose=0), repeat)
        ours = best_of(lambda: ext.transform(X), repeat)
    return f"keras {keras.__version__} / {label}", raw, ours


def _mx_symbol(mx):
    data = mx.sym.var("data")
    x = mx.sym.Activation(mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=32,
                                             name="conv1"), act_type="relu")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max")
    x = mx.sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=64, name="conv2")
    x = mx.sym.Activation(x, act_type="relu", name="relu2")
    return mx.sym.FullyConnected(mx.sym.mean(x, axis=(2, 3)), num_hidden=10, name="out")


def bench_mxnet(X, batch_size, device, repeat):
    from skfindkit import MXNetFeatureExtractor
    from skfindkit.extractors import import_mxnet

    mx = import_mxnet()
    Xc = np.ascontiguousarray(X.transpose(0, 3, 1, 2))  # NCHW
    ctx = mx.gpu() if device == "gpu" else mx.cpu()
    sym = _mx_symbol(mx)
    init = mx.mod.Module(sym, label_names=None, context=ctx)
    init.bind([("data", (batch_size, *Xc.shape[1:]))], for_training=False)
    init.init_params(mx.init.Xavier())
    arg, aux = init.get_params()
    ext = MXNetFeatureExtractor(sym, arg_params=arg, aux_params=aux, layer="relu2",
                                batch_size=batch_size, context=device).fit(Xc[:1])
    mod = mx.mod.Module(sym.get_internals()["relu2_output"], label_names=None, context=ctx)
    mod.bind([("data", (batch_size, *Xc.shape[1:]))], for_training=False)
    mod.set_params(arg, aux)

    def raw():  # Module.predict trips over MKL-DNN views in 1.9.1: the plain loop
        it = mx.io.NDArrayIter(Xc, batch_size=batch_size, last_batch_handle="pad")
        parts = []
        for batch in it:
            mod.forward(batch, is_train=False)
            parts.append(mod.get_outputs()[0].asnumpy()[: batch_size - batch.pad])
        return np.concatenate(parts)

    return f"mxnet {mx.__version__} (Module)", best_of(raw, repeat), \
        best_of(lambda: ext.transform(Xc), repeat)


def bench_gluon(X, batch_size, device, repeat):
    from skfindkit import GluonFeatureExtractor
    from skfindkit.extractors import import_mxnet

    mx = import_mxnet()
    nn = mx.gluon.nn
    Xc = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
    ctx = mx.gpu() if device == "gpu" else mx.cpu()
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(nn.Conv2D(32, 3, padding=1, activation="relu"), nn.MaxPool2D(),
                nn.Conv2D(64, 3, padding=1, activation="relu"))
    net.initialize(mx.init.Xavier(), ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    ext = GluonFeatureExtractor(net, batch_size=batch_size, context=device).fit(Xc[:1])

    def raw():  # collect the features, as a user of the raw call must
        return np.concatenate([net(mx.nd.array(Xc[i:i + batch_size], ctx=ctx)).asnumpy()
                               for i in range(0, len(Xc), batch_size)])

    return f"mxnet {mx.__version__} (Gluon)", best_of(raw, repeat), \
        best_of(lambda: ext.transform(Xc), repeat)


BENCHES = {"keras": bench_keras, "mxnet": bench_mxnet, "gluon": bench_gluon}


def main():
    options = parser(__doc__, repeats=5)
    options.add_argument("--frameworks", nargs="+", default=["keras"], choices=list(BENCHES))
    options.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    options.add_argument("--n-images", type=int, default=2048)
    options.add_argument("--size", type=int, default=32, help="image side (pixels)")
    options.add_argument("--batch-size", type=int, default=64)
    args = parse(options, n_images=8, size=8, batch_size=4)

    X = np.random.default_rng(0).random((args.n_images, args.size, args.size, 3), "float32")
    lines = [f"Machine: {machine_text()}; device: {args.device}", "",
             f"{args.n_images} images {args.size}x{args.size}x3, batch {args.batch_size}, "
             f"best of {args.repeats}", "",
             "| framework | raw call (img/s) | skfindkit extractor (img/s) | ratio |",
             "|---|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for name in args.frameworks:
        label, raw, ours = BENCHES[name](X, args.batch_size, args.device, args.repeats)
        n = args.n_images
        lines.append(f"| {label} | {n / raw:,.0f} | {n / ours:,.0f} | {raw / ours:.2f}x |")
        print(lines[-1], flush=True)
    lines[0] = f"Machine: {machine_text()}; device: {args.device}"  # load at the end
    write_results(args, "extractors.md", "\n".join(lines), record=False)


if __name__ == "__main__":
    main()
