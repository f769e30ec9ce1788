"""Text analysis for lexical retrieval: a document -> the list of its terms.

:class:`TextAnalyzer` is given to scikit-learn's vectorizers as their
``analyzer`` (``CountVectorizer(analyzer=TextAnalyzer(stem=True))`` in front of
a :class:`~skfindkit.BM25Index`, or a ``TfidfVectorizer``). It is an estimator
of parameters only, so a vectorizer holding it clones, pickles, saves with
:func:`skfindkit.io.save` (safe format) and tunes in ``GridSearchCV`` through
``<vectorizer>__analyzer__<param>`` like any nested estimator.

The analysis runs in this order: lowercase, fold accents (Unicode NFKD with
the combining marks removed, as scikit-learn's ``strip_accents="unicode"``),
split into tokens with ``token_pattern``, drop stop words, stem (Snowball,
through PyStemmer or snowballstemmer: ``pip install 'skfindkit[text]'``),
then join consecutive terms into word n-grams. Stop words are matched before
stemming; a given stop list is lowercased and accent-folded like the text.
"""

import re
import threading
from numbers import Integral

from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, strip_accents_unicode

from .utils import import_optional
from .utils._sklearn_compat import StrOptions

__all__ = ["TextAnalyzer", "stemmer_languages"]

_DEFAULT_PATTERN = r"(?u)\b\w\w+\b"
_STEMMERS = threading.local()  # a native stemmer is not thread-safe: one per thread
_ANALYSES = {}  # parameters -> their checked analysis (stop set, compiled pattern)
_MAX_ANALYSES = 64


def _stemmer_module():
    """PyStemmer if installed, else snowballstemmer (same Snowball algorithms)."""
    try:
        import Stemmer

        return Stemmer
    except ImportError:
        pass
    try:
        import snowballstemmer

        return snowballstemmer
    except ImportError:
        return import_optional("Stemmer", "text", package="PyStemmer")


def stemmer_languages():
    """The Snowball stemmers available (``TextAnalyzer(language=...)``).

    Returns
    -------
    languages : list of str
        Names such as ``"english"``, ``"french"``, ``"porter"``.

    Examples
    --------
    >>> from skfindkit.text import stemmer_languages
    >>> "english" in stemmer_languages() and "german" in stemmer_languages()
    True
    """
    return sorted(_stemmer_module().algorithms())


def _stem_words(language, words):
    stemmers = getattr(_STEMMERS, "by_language", None)
    if stemmers is None:
        stemmers = _STEMMERS.by_language = {}
    stemmer = stemmers.get(language)
    if stemmer is None:
        module = _stemmer_module()
        make = getattr(module, "Stemmer", None) or module.stemmer
        stemmer = stemmers[language] = make(language)
    return stemmer.stemWords(words)


class _Analysis:
    """One checked set of parameters, ready to analyse documents."""

    def __init__(self, params):
        self.lowercase = params["lowercase"]
        self.fold_accents = params["fold_accents"]
        self.pattern = re.compile(params["token_pattern"])
        if self.pattern.groups > 1:
            raise ValueError("token_pattern must have at most one capturing group, "
                             f"got {params['token_pattern']!r}")
        stop_words = params["stop_words"]
        self.stop_words = (ENGLISH_STOP_WORDS if stop_words == "english"
                           else frozenset(self._normalised(w) for w in stop_words or ()))
        self.language = params["language"] if params["stem"] else None
        if self.language is not None and self.language not in stemmer_languages():
            raise ValueError(f"TextAnalyzer: no Snowball stemmer for language "
                             f"{self.language!r}; choose one of {stemmer_languages()}")
        self.min_n, self.max_n = params["ngram_range"]
        if not 1 <= self.min_n <= self.max_n:
            raise ValueError(f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, "
                             f"got {params['ngram_range']!r}")

    def _normalised(self, text):
        if self.lowercase:
            text = text.lower()
        return strip_accents_unicode(text) if self.fold_accents else text

    def __call__(self, doc):
        tokens = [t for t in self.pattern.findall(self._normalised(doc))
                  if t not in self.stop_words]
        if self.language is not None:
            tokens = _stem_words(self.language, tokens)
        if self.max_n == 1:
            return tokens
        grams = list(tokens) if self.min_n == 1 else []
        for n in range(max(self.min_n, 2), self.max_n + 1):
            grams += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        return grams


class TextAnalyzer(BaseEstimator):
    """A document -> its terms, for ``CountVectorizer(analyzer=...)`` and ``TfidfVectorizer``.

    Parameters
    ----------
    lowercase : bool, default=True
        Lowercase the document first.
    fold_accents : bool, default=True
        Remove accents and other diacritics (``"é"`` -> ``"e"``; Unicode NFKD
        with combining marks dropped).
    stop_words : "english", list of str or None, default=None
        Words dropped before stemming: scikit-learn's English list
        (``ENGLISH_STOP_WORDS``), a given list (lowercased and accent-folded
        like the tokens when those options are on), or none.
    stem : bool, default=False
        Reduce each token to its Snowball stem in ``language`` (``"running"``
        -> ``"run"``); needs PyStemmer or snowballstemmer (the ``text`` extra).
    language : str, default="english"
        Snowball stemmer (see :func:`stemmer_languages`); used when ``stem``.
    ngram_range : tuple (min_n, max_n), default=(1, 1)
        Word n-grams kept, terms joined by a space (``(1, 2)``: words and
        pairs of consecutive words, after stop-word removal and stemming).
    token_pattern : str, default=r"(?u)\\b\\w\\w+\\b"
        Regular expression of a token (scikit-learn's default: two or more
        word characters); with one capturing group, the group is the token.

    Notes
    -----
    The analyzer holds parameters only (no fitted state): calling it is
    ``fit``-free, and the checked parameters are cached per process, so
    they are validated once, on the first document, not for every one.
    Snowball stemmers come from PyStemmer when installed, else from the
    pure-Python snowballstemmer; both implement the same algorithms.

    Examples
    --------
    >>> from skfindkit.text import TextAnalyzer
    >>> TextAnalyzer(stop_words="english", stem=True)("The cafés were running!")
    ['cafe', 'run']
    >>> TextAnalyzer(ngram_range=(1, 2))("Fast search engines")
    ['fast', 'search', 'engines', 'fast search', 'search engines']
    >>> from sklearn.feature_extraction.text import CountVectorizer
    >>> vectorizer = CountVectorizer(analyzer=TextAnalyzer(stem=True))
    >>> vectorizer.fit(["runs and running", "a runner"]).get_feature_names_out()
    array(['and', 'run', 'runner'], dtype=object)
    >>> vectorizer.get_params()["analyzer__stem"]
    True
    """

    _parameter_constraints: dict = {
        "lowercase": ["boolean"],
        "fold_accents": ["boolean"],
        "stop_words": [StrOptions({"english"}), list, tuple, None],
        "stem": ["boolean"],
        "language": [str],
        "ngram_range": [tuple],
        "token_pattern": [str],
    }

    def __init__(self, *, lowercase=True, fold_accents=True, stop_words=None, stem=False,
                 language="english", ngram_range=(1, 1), token_pattern=_DEFAULT_PATTERN):
        self.lowercase = lowercase
        self.fold_accents = fold_accents
        self.stop_words = stop_words
        self.stem = stem
        self.language = language
        self.ngram_range = ngram_range
        self.token_pattern = token_pattern

    def _analysis(self):
        try:  # attributes read directly: get_params inspects the signature (per document)
            key = tuple(
                (k, type(v).__name__, tuple(v) if isinstance(v, (list, tuple)) else v)
                for k, v in ((k, getattr(self, k)) for k in self._parameter_constraints))
            return _ANALYSES[key]
        except (KeyError, TypeError):
            pass
        analysis = self._validate_params()
        if len(_ANALYSES) >= _MAX_ANALYSES:
            _ANALYSES.clear()
        _ANALYSES[key] = analysis
        return analysis

    def _validate_params(self):
        """Check every parameter (types, then values: the stemmer's language, the
        n-gram range); return the analysis they make. :func:`skfindkit.io.load`
        calls it too, so a file with invalid parameters is refused when loaded."""
        super()._validate_params()
        params = self.get_params(deep=False)
        stop_words = params["stop_words"]
        if stop_words not in (None, "english") and not all(
                isinstance(w, str) for w in stop_words):
            raise ValueError("stop_words must be 'english', None or a list of strings")
        if len(params["ngram_range"]) != 2 or not all(
                isinstance(n, Integral) and not isinstance(n, bool)
                for n in params["ngram_range"]):
            raise ValueError(f"ngram_range must be a pair of ints, got {params['ngram_range']!r}")
        return _Analysis(params)

    def __call__(self, doc):
        """The terms of one document.

        Parameters
        ----------
        doc : str
            The document's text (a vectorizer decodes files and bytes first).

        Returns
        -------
        terms : list of str
        """
        if not isinstance(doc, str):
            raise TypeError(f"TextAnalyzer analyses str documents, got {type(doc).__name__}")
        return self._analysis()(doc)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
