"""Relevance judgments and runs: :class:`Qrels`, TREC files and BEIR folders.

A *judgment* says how relevant a document is to a query, as an integer grade
(0: judged non-relevant; 1, 2, ...: relevant, higher is better). A *run* is
what a system returned: for each query, a score per retrieved document,
higher is better. Both are mappings keyed by query id; query and document ids
are kept as strings (``1`` and ``"1"`` are the same document), as in TREC and
BEIR files.
"""

import json
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["Qrels", "as_run", "load_beir", "read_trec_qrels", "read_trec_run"]


def _grade(value, where):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Integral, Real)):
        raise ValueError(f"{where}: a grade must be an integer, got {value!r}.")
    if value != int(value):
        raise ValueError(f"{where}: a grade must be an integer, got {value!r}.")
    return int(value)


class Qrels(Mapping):
    """Relevance judgments: query id -> {document id: integer grade}.

    A read-only mapping; ids are converted to strings. A document not judged
    for a query counts as non-relevant for it, as does a grade of 0 or less.

    Parameters
    ----------
    judgments : mapping
        ``{query_id: {doc_id: grade}}`` with integer grades.

    Examples
    --------
    >>> qrels = Qrels({"q1": {"d1": 2, "d3": 0}, 7: {"d2": 1}})
    >>> sorted(qrels)
    ['7', 'q1']
    >>> qrels["q1"]
    {'d1': 2, 'd3': 0}
    >>> qrels.n_relevant("q1")
    1
    """

    def __init__(self, judgments=None):
        data = {}
        for qid, docs in dict(judgments or {}).items():
            if not isinstance(docs, Mapping):
                raise TypeError(f"query {qid!r}: judgments must be a mapping "
                                f"{{doc_id: grade}}, got {type(docs).__name__}.")
            data[str(qid)] = {str(d): _grade(g, f"query {qid!r}, document {d!r}")
                              for d, g in docs.items()}
        self._data = data

    def __getitem__(self, qid):
        return self._data[str(qid)]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        n = sum(len(d) for d in self._data.values())
        return f"Qrels({len(self)} queries, {n} judgments)"

    def n_relevant(self, qid):
        """Number of documents judged relevant (grade > 0) for ``qid``."""
        return sum(g > 0 for g in self[qid].values())

    def per_query(self, query_ids):
        """The judgments of each query of ``query_ids``, in that order (``{}`` if unjudged).

        This is the ``y`` of :class:`~skfindkit.model_selection.JudgedRetrieval`.
        """
        return [dict(self._data.get(str(q), {})) for q in query_ids]


def as_run(run):
    """A run as ``{query_id: {doc_id: float score}}`` with string ids (validated copy)."""
    out = {}
    for qid, docs in dict(run).items():
        if not isinstance(docs, Mapping):
            raise TypeError(f"query {qid!r}: a run maps each query to {{doc_id: score}}, "
                            f"got {type(docs).__name__}.")
        scores = {str(d): float(s) for d, s in docs.items()}
        if not all(np.isfinite(list(scores.values()) or [0.0])):
            raise ValueError(f"query {qid!r}: scores must be finite.")
        out[str(qid)] = scores
    return out


def _lines(path):
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line.split()


def read_trec_qrels(path):
    """Read a TREC qrels file (``query_id iteration doc_id grade`` per line).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    qrels : Qrels
    """
    judgments = {}
    for number, fields in _lines(path):
        if len(fields) != 4:
            raise ValueError(f"{path}, line {number}: expected 'query_id iteration doc_id "
                             f"grade', got {len(fields)} fields.")
        qid, _, doc, grade = fields
        judgments.setdefault(qid, {})[doc] = _parse_int(grade, path, number)
    return Qrels(judgments)


def _parse_int(text, path, number):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}, line {number}: grade {text!r} is not an integer.") from None


def read_trec_run(path):
    """Read a TREC run file (``query_id Q0 doc_id rank score tag`` per line).

    The rank column is ignored, as trec_eval does: documents are ordered by score.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    run : dict
        ``{query_id: {doc_id: score}}``.
    """
    run = {}
    for number, fields in _lines(path):
        if len(fields) != 6:
            raise ValueError(f"{path}, line {number}: expected 'query_id Q0 doc_id rank "
                             f"score tag', got {len(fields)} fields.")
        try:
            score = float(fields[4])
        except ValueError:
            raise ValueError(f"{path}, line {number}: score {fields[4]!r} is not a "
                             "number.") from None
        run.setdefault(fields[0], {})[fields[2]] = score
    return as_run(run)


def _jsonl(path):
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {number}: not JSON ({exc.msg}).") from None
                if "_id" not in record:
                    raise ValueError(f"{path}, line {number}: no '_id' field.")
                yield record


def _read_beir_qrels(path):
    judgments = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip() or (number == 1 and fields[0] == "query-id"):
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}, line {number}: expected 'query-id<TAB>corpus-id"
                                 f"<TAB>score', got {len(fields)} fields.")
            judgments.setdefault(fields[0], {})[fields[1]] = _parse_int(fields[2], path, number)
    return Qrels(judgments)


def load_beir(folder, split="test"):
    """Load a BEIR-format folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/SPLIT.tsv``.

    Parameters
    ----------
    folder : str or path-like
        Holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line),
        ``queries.jsonl`` (``{"_id", "text"}``) and ``qrels/{train,dev,test}.tsv``
        (``query-id``, ``corpus-id``, ``score``; a header line is skipped).
    split : str, default="test"
        Which ``qrels/SPLIT.tsv`` to read.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``corpus`` (list of str: title and text joined by a space),
        ``corpus_ids`` (list of str), ``queries`` and ``query_ids`` (the
        queries judged in ``split``, in ``queries.jsonl`` order) and
        ``qrels`` (:class:`Qrels` of that split).
    """
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (a BEIR folder holds corpus.jsonl, "
                                    "queries.jsonl and qrels/SPLIT.tsv).")
    corpus_ids, corpus = [], []
    for record in _jsonl(folder / "corpus.jsonl"):
        corpus_ids.append(str(record["_id"]))
        corpus.append(" ".join(t for t in (record.get("title"), record.get("text")) if t))
    qrels = _read_beir_qrels(qrels_path)
    query_ids, queries = [], []
    for record in _jsonl(folder / "queries.jsonl"):
        if str(record["_id"]) in qrels:
            query_ids.append(str(record["_id"]))
            queries.append(record.get("text") or "")
    missing = set(qrels) - set(query_ids)
    if missing:
        raise ValueError(f"{qrels_path}: {len(missing)} judged queries are not in "
                         f"queries.jsonl (e.g. {sorted(missing)[:3]}).")
    return Bunch(corpus=corpus, corpus_ids=corpus_ids, queries=queries,
                 query_ids=query_ids, qrels=qrels)
