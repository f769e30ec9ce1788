"""Doc2VecLoader on gensim's bundled Lee corpus."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("gensim")  # the "text" extra
from gensim.test.utils import datapath
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from skfindkit import ExactIndex
from skfindkit.loaders import Doc2VecLoader, ItemLoadError, ItemLoadWarning

FAST = dict(vector_size=16, epochs=10, min_count=2)


@pytest.fixture(scope="module")
def lee():
    with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
        return [line.strip() for line in handle if line.strip()]


@pytest.fixture(scope="module")
def fitted(lee):
    return Doc2VecLoader(**FAST).fit(lee)


def test_vectors_retrieve_their_own_document(fitted, lee):
    X = fitted.transform(lee[:60])
    assert X.shape == (60, 16) and X.dtype == np.float32
    assert fitted.get_feature_names_out()[-1] == "doc2vec15"
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    train = fitted.transform(lee)
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    assert (np.argmax(unit @ train.T, axis=1) == np.arange(60)).mean() > 0.8


def test_transform_is_deterministic_threads_and_pickle(fitted, lee):
    a = fitted.transform(lee[:40])
    np.testing.assert_array_equal(fitted.transform(lee[:40]), a)
    fitted.set_params(n_jobs=2)
    try:
        np.testing.assert_array_equal(fitted.transform(lee[:40]), a)
    finally:
        fitted.set_params(n_jobs=None)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(lee[:40]), a)


def test_tokens_bytes_and_custom_tokenizer_agree(fitted, lee):
    from gensim.utils import simple_preprocess

    text = lee[3]
    out = fitted.transform([text, text.encode("utf-8"), simple_preprocess(text)])
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    custom = Doc2VecLoader(tokenizer=str.split, **FAST).fit(lee[:100])
    assert custom.model_.wv.key_to_index.get("The") is not None


_TRAIN_SCRIPT = """
import sys; import numpy as np
from gensim.test.utils import datapath
from skfindkit.loaders import Doc2VecLoader
docs = open(datapath("lee_background.cor"), encoding="latin-1").read().splitlines()[:80]
out = Doc2VecLoader(vector_size=8, epochs=3, random_state=3).fit(docs).transform(docs[:3])
sys.stdout.write(repr(out.round(6).tolist()))
"""


@pytest.mark.slow
def test_training_is_reproducible_across_hash_seeds():
    outputs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        run = subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT], env=env, capture_output=True,
            text=True, check=True,
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1] and outputs[0].startswith("[[")


def test_bad_texts_name_the_item(tmp_path, fitted, lee):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    good = tmp_path / "good.txt"
    good.write_text(lee[0], encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    files = Doc2VecLoader(input="filename", **FAST).fit([good, good])
    for bad, match in [(latin, "latin1.txt.*UnicodeDecodeError"), (empty, "zero-byte"),
                       (tmp_path / "nope.txt", "no such file")]:
        with pytest.raises(ItemLoadError, match=rf"item 1 .*{match}"):
            files.transform([good, bad])
    with pytest.raises(ItemLoadError, match=r"item 1 \('  !! '\).*empty document"):
        fitted.transform([lee[0], "  !! "])
    with pytest.raises(ItemLoadError, match="item 0"):
        fitted.transform([3.5])
    with pytest.warns(ItemLoadWarning, match="item 1"):
        out = Doc2VecLoader(on_error="zeros", **FAST).fit(lee[:50] + [""]).transform(
            [lee[0], ""]
        )
    assert not out[1].any() and out[0].any()


def test_unfitted_and_bad_parameters(lee):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Doc2VecLoader().transform(lee[:2])
    with pytest.raises(ValueError, match="dm"):
        Doc2VecLoader(dm=2).fit(lee[:5])
    with pytest.raises(ValueError, match="min_count"):
        Doc2VecLoader(min_count=1000).fit(lee[:5])


def test_grid_search_in_a_retrieval_pipeline(lee):
    # label = which of four documents a noisy excerpt comes from
    rng = np.random.RandomState(0)
    texts, labels = [], []
    for label, doc in enumerate(lee[:4]):
        words = doc.split()
        for _ in range(6):
            start = rng.randint(0, max(1, len(words) - 30))
            texts.append(" ".join(words[start : start + 30]))
            labels.append(label)
    pipe = Pipeline([("loader", Doc2VecLoader(min_count=1, vector_size=16, epochs=40)),
                     ("index", ExactIndex(n_neighbors=2, metric="cosine"))])
    grid = GridSearchCV(pipe, {"loader__dm": [0, 1], "loader__window": [2, 5]}, cv=StratifiedKFold(3)).fit(texts, labels)
    assert grid.best_score_ > 0.4
