"""Doc2VecLoader: texts -> Doc2Vec paragraph vectors (gensim)."""

import copy
import os
import zlib
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.utils import check_random_state

from ..utils import import_optional
from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval, StrOptions
from ._base import BaseVectorLoader, check_file

__all__ = ["Doc2VecLoader"]


def stable_hash(text):
    """String hash that, unlike ``hash``, does not depend on ``PYTHONHASHSEED``."""
    return zlib.crc32(str(text).encode("utf-8"))


class Doc2VecLoader(BaseVectorLoader):
    """Train Doc2Vec on texts in ``fit``; infer one vector per text in ``transform``.

    Parameters
    ----------
    vector_size : int, default=100
        Dimension of the document vectors.
    window : int, default=5
        Context window of the model.
    min_count : int, default=2
        Ignore words rarer than this in the training texts.
    epochs : int, default=20
        Training epochs (and inference epochs for new texts).
    dm : {0, 1}, default=1
        1: distributed memory (PV-DM); 0: distributed bag of words (PV-DBOW).
    random_state : int, RandomState instance or None, default=0
        Seeds training and inference: an int gives the same model and vectors
        in any process; ``None`` or a ``RandomState`` draws the seed in ``fit``
        (kept as ``seed_``).
    tokenizer : callable or None, default=None
        ``tokenizer(text) -> list of str``; ``None`` uses gensim's
        ``simple_preprocess``. Items that are already lists of tokens are used
        as they are.
    input : {"content", "filename"}, default="content"
        ``"content"``: items are texts (``str``, ``bytes`` decoded with
        ``encoding``, or token lists); ``"filename"``: items are paths of text
        files read with ``encoding``.
    encoding : str, default="utf-8"
        Encoding of ``bytes`` items and files; undecodable input is an error
        naming the item.
    n_jobs : int, default=None
        Parallelism: gensim training threads in ``fit``, and worker processes
        inferring vectors in ``transform`` (the model is sent once per worker;
        processes scale where threads do not, as gensim's inference holds the
        GIL for about half of its time). ``None`` means 1, ``-1`` all cores.
        ``transform`` gives the same vectors for any ``n_jobs``; training is
        bit-for-bit reproducible only with ``n_jobs=None`` or 1 (several
        training threads interleave updates in a scheduling-dependent order).
    verbose : int, default=0
        Show a tqdm progress bar when > 0.
    on_error : {"raise", "nan", "zeros"}, default="raise"
        Policy for items that fail (unreadable or non-UTF-8 files, empty
        documents): raise an error naming the item, or warn and put an aligned
        placeholder row (in ``fit``, failing texts are left out of training).

    Attributes
    ----------
    model_ : gensim.models.Doc2Vec
        The trained model.
    seed_ : int
        The seed of training and inference, from ``random_state``.

    Notes
    -----
    Reproducibility: training uses a hash that does not depend on
    ``PYTHONHASHSEED`` (gensim's default is Python's randomized ``hash``), so
    with ``n_jobs=1`` the same texts and ``random_state`` give the same model in any
    process. ``transform`` gives the same vectors for any ``n_jobs``: each
    text is inferred from an initial vector and a random state seeded from
    ``seed_`` and the text itself (gensim's own ``infer_vector`` seeds from ``hash`` and
    from the model's shared random state, so it varies between calls).

    Examples
    --------
    >>> from skfindkit import Doc2VecLoader
    >>> texts = ["the cat sat on the mat", "a dog sat on a log",
    ...          "cats and dogs", "the stock market fell"] * 5
    >>> loader = Doc2VecLoader(vector_size=8, epochs=5, min_count=1).fit(texts)
    >>> loader.transform(["a cat on a mat"]).shape
    (1, 8)
    """

    _parameter_constraints = {
        **BaseVectorLoader._parameter_constraints,
        "vector_size": [Interval(Integral, 1, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left")],
        "min_count": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "dm": [Interval(Integral, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "tokenizer": [callable, None],
        "input": [StrOptions({"content", "filename"})],
        "encoding": [str],
    }
    _item_name = "doc"
    _kind = "text"
    _requires = Requirement(library="gensim", import_name="gensim", extra="text")

    def __init__(
        self,
        *,
        vector_size=100,
        window=5,
        min_count=2,
        epochs=20,
        dm=1,
        random_state=0,
        tokenizer=None,
        input="content",
        encoding="utf-8",
        n_jobs=None,
        verbose=0,
        on_error="raise",
    ):
        self.vector_size = vector_size
        self.window = window
        self.min_count = min_count
        self.epochs = epochs
        self.dm = dm
        self.random_state = random_state
        self.tokenizer = tokenizer
        self.input = input
        self.encoding = encoding
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.on_error = on_error

    # ------------------------------------------------------------ tokens
    def _tokens(self, item, utils=None):
        if isinstance(item, (list, tuple)):
            tokens = [str(t) for t in item]
        else:
            if self.input == "filename":
                if not isinstance(item, (str, os.PathLike)):
                    raise TypeError(f"input='filename' expects paths, got {type(item).__name__}")
                with open(check_file(item), "rb") as handle:
                    item = handle.read()
            if isinstance(item, (bytes, bytearray)):
                item = bytes(item).decode(self.encoding)
            if not isinstance(item, str):
                raise TypeError(
                    f"a text item must be a str, bytes or a list of tokens, got "
                    f"{type(item).__name__}"
                )
            if self.tokenizer is None:
                if utils is None:
                    utils = import_optional("gensim.utils", "text", package="gensim")
                tokens = utils.simple_preprocess(item)
            else:
                tokens = list(self.tokenizer(item))
        if not tokens:
            raise ValueError("it is an empty document (no tokens)")
        return tokens

    # --------------------------------------------------------------- fit
    def _fit_items(self, items, y):
        """Train the Doc2Vec model on the texts ``items``."""
        gensim_d2v = import_optional("gensim.models.doc2vec", "text", package="gensim")
        if isinstance(self.random_state, Integral):
            seed = int(self.random_state)
        else:  # None or a RandomState: draw the seed once, kept as seed_
            seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        corpus = []
        for position, item in enumerate(items):
            try:
                corpus.append(
                    gensim_d2v.TaggedDocument(self._tokens(item), [len(corpus)])
                )
            except Exception as exc:
                self._fail(position, item, exc)  # raises under on_error="raise"
        if not corpus:
            raise ValueError("Doc2VecLoader.fit got no usable document.")
        model = gensim_d2v.Doc2Vec(
            vector_size=self.vector_size,
            window=self.window,
            min_count=self.min_count,
            dm=self.dm,
            seed=seed,
            workers=effective_n_jobs(self.n_jobs),
            hashfxn=stable_hash,
        )
        model.build_vocab(corpus)
        if not model.wv.key_to_index:
            raise ValueError(
                f"Doc2VecLoader.fit: no word occurs min_count={self.min_count} times "
                "in the training texts; lower min_count or give more text."
            )
        model.train(corpus, total_examples=len(corpus), epochs=self.epochs)
        self.model_ = model
        self.seed_ = seed

    # --------------------------------------------------------- transform
    def _prepare(self):
        d2v = import_optional("gensim.models.doc2vec", "text", package="gensim")
        utils = import_optional("gensim.utils", "text", package="gensim")
        model = copy.copy(self.model_)  # private random state, shared weights
        model.random = np.random.RandomState(self.seed_)  # reseeded for every text
        return d2v, utils, model

    def _load_item(self, item, context):
        return self._infer(self._tokens(item, context[1]), context)

    def _infer(self, tokens, context):
        """Deterministic version of gensim's ``Doc2Vec.infer_vector``.

        The random state is reseeded from ``seed_`` and the text (reseeding a
        ``RandomState`` gives the stream of a new one and costs 50x less).
        """
        d2v, _, model = context
        model.random.seed((stable_hash(" ".join(tokens)) ^ self.seed_) & 0xFFFFFFFF)
        size = model.dv.vector_size
        vector = ((model.random.random_sample(size) - 0.5) / size).astype(np.float32)
        vector = vector.reshape(1, size)
        lockf = np.ones(1, dtype=np.float32)
        work = np.zeros(model.layer1_size, dtype=np.float32)
        neu1 = np.zeros(model.layer1_size, dtype=np.float32)
        alpha, min_alpha, epochs = model.alpha, model.min_alpha, model.epochs
        delta = (alpha - min_alpha) / max(epochs - 1, 1)
        kwargs = dict(learn_words=False, learn_hidden=False,
                      doctag_vectors=vector, doctags_lockf=lockf)
        for _ in range(epochs):
            if model.sg:
                d2v.train_document_dbow(model, tokens, [0], alpha, work, **kwargs)
            elif model.dm_concat:
                d2v.train_document_dm_concat(model, tokens, [0], alpha, work, neu1, **kwargs)
            else:
                d2v.train_document_dm(model, tokens, [0], alpha, work, neu1, **kwargs)
            alpha -= delta
        return vector[0]

    def _item_shape(self):
        return (self.vector_size,)

    def _feature_names(self):
        return [f"doc2vec{i}" for i in range(self.vector_size)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")
