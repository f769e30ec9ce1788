"""Every pipeline the CLI builds round-trips through the safe format (skfindkit.io).

``skfindkit index`` saves with :func:`skfindkit.io.save` by default, so each
``--features`` choice of each kind, and each installed ``--index`` choice, must
load back with :func:`skfindkit.io.load` and answer the same queries. Doc2Vec
(a gensim model) is the one feature set the safe format cannot hold: it is
refused with an error that says to use a ``.joblib`` output.
"""

import numpy as np
import pytest

from skfindkit import attach_keys, search
from skfindkit import io as skio
from skfindkit.features import DEFAULT_FEATURES, FEATURE_SETS, INDEXES, build_pipeline

from .._optional import has

SAFE = [(kind, name) for kind in sorted(FEATURE_SETS) for name in FEATURE_SETS[kind]
        if name != "doc2vec"]
CASES = [pytest.param(kind, name, "exact", marks=[pytest.mark.slow] if name == "keras" else [])
         for kind, name in SAFE] + [
    (kind, DEFAULT_FEATURES[kind], index) for kind in sorted(FEATURE_SETS)
    for index in INDEXES if index != "exact"
]
TEXTS = ["the cat sat on the mat", "a dog chased the cat", "stock markets fell sharply",
         "the central bank raised rates", "rain is expected tomorrow", "sunny and warm weekend",
         "the striker scored twice", "the match ended in a draw"]


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """A few files of each kind (paths), and a MobileNetV2 weights file."""
    root = tmp_path_factory.mktemp("collections")
    found = {}
    if has("PIL") and has("skimage"):
        from .._serve_fixtures import write_digit_pngs

        (root / "image").mkdir()
        found["image"] = write_digit_pngs(root / "image", n=24)[0]
    if has("soundfile") and has("librosa"):
        from .._audio_fixtures import write_dataset

        (root / "audio").mkdir()
        found["audio"] = write_dataset(root / "audio", n_per_family=3)[0]
    (root / "text").mkdir()
    found["text"] = []
    for i, text in enumerate(TEXTS):
        path = root / "text" / f"t{i}.txt"
        path.write_text(text, encoding="utf-8")
        found["text"].append(str(path))
    found["root"] = root
    return found


def _keras_weights(root):
    path = root / "mobilenetv2_notop.weights.h5"
    if not path.exists():
        import keras

        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False,
                                       pooling="avg", weights=None).save_weights(path)
    return str(path)


@pytest.mark.parametrize("kind, features, index", CASES,
                         ids=[f"{k}-{f}-{i}" for k, f, i in CASES])
def test_cli_pipeline_round_trips_through_the_safe_format(collections, tmp_path, kind,
                                                         features, index):
    if kind not in collections:
        pytest.skip(f"the {kind} extra is not installed")
    extras = FEATURE_SETS[kind][features].extras + ((INDEXES[index][1], None, None),)
    missing = [module for module, _, _ in extras if module and not has(module)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    weights = _keras_weights(collections["root"]) if features == "keras" else None
    # MobileNetV2 at 224 x 224 is the slow part: 4 images give 3 queries and their neighbours
    files = collections[kind][:4] if features == "keras" else collections[kind]
    pipeline = build_pipeline(kind, features, n_neighbors=3, index=index, weights=weights)
    attach_keys(pipeline.fit(files), files)  # what 'skfindkit index' saves
    path = tmp_path / "pipeline.skfk"
    skio.save(pipeline, path)
    loaded = skio.load(path)
    queries = files[:3]
    expected = search(pipeline, queries, n_neighbors=3)
    got = search(loaded, queries, n_neighbors=3)
    _assert_same_neighbours((got.distances, got.indices), (expected.distances, expected.indices))
    np.testing.assert_array_equal(loaded[-1].item_keys_, pipeline[-1].item_keys_)
    assert type(loaded[-1]) is type(pipeline[-1])


def _assert_same_neighbours(got, expected):
    """Same distances; same items, in any order among exact ties (e.g. TF-IDF texts
    sharing no word, all at cosine distance 1, which nmslib returns in any order)."""
    np.testing.assert_array_equal(got[0], expected[0])
    for dist, a, b in zip(expected[0], got[1], expected[1]):
        for value in np.unique(dist):
            if value < dist.max() or (dist == value).all():
                assert set(a[dist == value]) == set(b[dist == value])


def test_doc2vec_pipeline_is_refused_by_the_safe_format(collections, tmp_path):
    if not has("gensim"):
        pytest.skip("gensim is not installed")
    pipeline = build_pipeline("text", "doc2vec", n_neighbors=3).fit(collections["text"])
    with pytest.raises(TypeError, match="joblib"):
        skio.save(pipeline, tmp_path / "p.skfk")
    assert not (tmp_path / "p.skfk").exists()


def test_functions_are_stored_by_name_and_foreign_ones_refused(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skfindkit import ExactIndex
    from skfindkit.features import _dense

    X = np.random.RandomState(0).rand(20, 4)
    ours = make_pipeline(FunctionTransformer(_dense), ExactIndex(n_neighbors=2)).fit(X)
    skio.save(ours, tmp_path / "ours.skfk")
    assert skio.load(tmp_path / "ours.skfk")[0].func is _dense
    assert b"skfindkit.features._dense" in (tmp_path / "ours.skfk").read_bytes()

    for func in (lambda x: x, np.asarray, _closure()):
        other = make_pipeline(FunctionTransformer(func), ExactIndex(n_neighbors=2)).fit(X)
        with pytest.raises(TypeError, match="joblib.dump"):
            skio.save(other, tmp_path / "other.skfk")

    # an unmarked skfindkit function is refused too (a file must not pick e.g. io.save)
    saving = make_pipeline(FunctionTransformer(skio.save, kw_args={"path": "x"}))
    with pytest.raises(TypeError, match="skfindkit.io.save"):
        skio.save(saving, tmp_path / "saving.skfk")


def _closure():
    scale = 2.0

    def twice(x):
        return x * scale

    return twice


def test_a_file_naming_an_unmarked_function_is_refused_at_load(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    from skfindkit.features import _dense

    from ..test_io import _rewrite_tree  # re-seals a rewritten tree, as an attacker would

    path = tmp_path / "f.skfk"
    skio.save(FunctionTransformer(_dense), path)

    def to_save(tree):
        node = tree["root"]["state"]["items"]
        for pair in node:
            if pair[0] == "func":
                pair[1]["name"] = "skfindkit.io.save"
        return tree

    _rewrite_tree(path, to_save)
    with pytest.raises(skio.UntrustedTypeError, match="skfindkit.io.save"):
        skio.load(path)
    assert skio.load(path, trusted=["skfindkit.io.save"]).func is skio.save


def test_trusted_functions_of_your_own(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "f.skfk"
    with pytest.raises(TypeError, match="joblib"):
        skio.save(FunctionTransformer(np.log1p), path)  # a ufunc, not a function
    skio.save(FunctionTransformer(_closure), path, trusted=[_closure])
    with pytest.raises(skio.UntrustedTypeError, match="_closure"):
        skio.load(path)
    assert skio.load(path, trusted=[_closure]).func is _closure


def test_an_object_referenced_twice_loads_as_one_object(tmp_path):
    # ids of shared objects must be unique when they nest (an estimator holding arrays,
    # referenced twice): KerasFeatureExtractor's model/model_ failed their checksum
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    scaler = StandardScaler().fit(np.random.RandomState(0).rand(10, 3))
    holder = FunctionTransformer(kw_args={"first": scaler, "second": scaler})
    skio.save(holder, tmp_path / "shared.skfk")
    loaded = skio.load(tmp_path / "shared.skfk").kw_args
    assert loaded["second"] is loaded["first"]
    np.testing.assert_array_equal(loaded["first"].scale_, scaler.scale_)
