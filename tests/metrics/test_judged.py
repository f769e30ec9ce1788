"""Judged measures equal trec_eval's (through pytrec_eval), ties and unjudged documents included."""

import numpy as np
import pytest

from skfindkit.metrics import (
    Qrels,
    evaluate_run,
    judged_average_precision,
    judged_recall_at_k,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    read_trec_qrels,
    read_trec_run,
)

from .._beir import write_beir


def _random_case(seed, n_queries=40, n_docs=60):
    """Graded judgments (some 0, some queries without a relevant document) and runs
    with many tied scores, unjudged documents and documents judged but not retrieved."""
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        judged = rng.choice(n_docs, size=rng.integers(1, 15), replace=False)
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(0, 4)) for d in judged}
        retrieved = rng.choice(n_docs, size=rng.integers(1, 40), replace=False)
        run[f"q{q}"] = {f"d{d}": float(rng.integers(0, 5)) for d in retrieved}  # ties
    return qrels, run


def _trec(qrels, run, measures):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


@pytest.mark.parametrize("seed", range(5))
def test_measures_equal_pytrec_eval(seed):
    qrels, run = _random_case(seed)
    ref = _trec(qrels, run, {"ndcg_cut_5", "ndcg_cut_10", "recall_10", "recall_100",
                             "map", "map_cut_10"})
    checks = [
        (ndcg_at_k(qrels, run, 5, per_query=True), "ndcg_cut_5"),
        (ndcg_at_k(qrels, run, 10, per_query=True), "ndcg_cut_10"),
        (judged_recall_at_k(qrels, run, 10, per_query=True), "recall_10"),
        (judged_recall_at_k(qrels, run, 100, per_query=True), "recall_100"),
        (judged_average_precision(qrels, run, per_query=True), "map"),
        (judged_average_precision(qrels, run, 10, per_query=True), "map_cut_10"),
    ]
    for ours, name in checks:
        assert set(ours) == set(ref)
        for q in ref:
            assert ours[q] == pytest.approx(ref[q][name], abs=1e-9), (name, q)


@pytest.mark.parametrize("seed", range(3))
def test_mrr_at_k_equals_pytrec_eval_recip_rank_of_the_first_k(seed):
    qrels, run = _random_case(seed)
    for k in (1, 3, 10):
        # trec_eval's order (score, then larger id), cut at k: what recip_rank sees
        top = {q: dict(sorted(docs.items(), key=lambda ds: (ds[1], ds[0]), reverse=True)[:k])
               for q, docs in run.items()}
        ref = _trec(qrels, top, {"recip_rank"})
        ours = mrr_at_k(qrels, run, k, per_query=True)
        for q in ref:
            assert ours[q] == pytest.approx(ref[q]["recip_rank"], abs=1e-9)


def test_ties_are_broken_by_the_larger_document_id_like_trec_eval():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0}}  # tie: "b" ranks first
    assert mrr_at_k(qrels, run) == 0.5 == _trec(qrels, run, {"recip_rank"})["q"]["recip_rank"]
    assert mrr_at_k({"q": {"b": 1}}, run) == 1.0


def test_means_are_over_judged_queries_absent_or_hopeless_ones_scoring_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    run = {"q1": {"a": 1.0}, "q4": {"a": 1.0}}  # q2 not run, q3 has no relevant doc
    for measure in (ndcg_at_k, mrr_at_k, judged_recall_at_k, judged_average_precision):
        assert measure(qrels, run) == pytest.approx(1 / 3)
    assert evaluate_run(qrels, run, ["ndcg@1", "map"]) == {"ndcg@1": 1 / 3, "map": 1 / 3}


def test_graded_gains_rank_the_better_document_first():
    qrels = {"q": {"a": 3, "b": 1}}
    best = ndcg_at_k(qrels, {"q": {"a": 2.0, "b": 1.0}})
    worse = ndcg_at_k(qrels, {"q": {"a": 1.0, "b": 2.0}})
    assert best == 1.0 and worse < 1.0


def test_validation():
    with pytest.raises(ValueError, match="integer"):
        Qrels({"q": {"a": 1.5}})
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k({"q": {"a": 1}}, {"q": {}}, k=0)
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate_run({"q": {"a": 1}}, {}, ["p@10"])
    with pytest.raises(ValueError, match="finite"):
        ndcg_at_k({"q": {"a": 1}}, {"q": {"a": float("nan")}})
    with pytest.raises(ValueError, match="empty"):
        ndcg_at_k({}, {})


def test_trec_files_round_trip(tmp_path):
    qrels, run = _random_case(7, n_queries=5)
    (tmp_path / "qrels").write_text("".join(f"{q} 0 {d} {g}\n" for q, docs in qrels.items()
                                            for d, g in docs.items()))
    (tmp_path / "run").write_text("".join(f"{q} Q0 {d} 1 {s} tag\n" for q, docs in run.items()
                                          for d, s in docs.items()))
    assert dict(read_trec_qrels(tmp_path / "qrels")) == qrels
    assert read_trec_run(tmp_path / "run") == run
    (tmp_path / "bad").write_text("q 0 d\n")
    with pytest.raises(ValueError, match="line 1"):
        read_trec_qrels(tmp_path / "bad")


def test_load_beir(tmp_path):
    write_beir(tmp_path, {"d1": ("Cats", "sit on mats"), "d2": ("", "dogs bark")},
               {"q1": "cat mats", "q2": "barking", "q3": "unjudged"},
               {"test": {"q2": {"d2": 1}, "q1": {"d1": 2, "d2": 0}}, "train": {"q3": {"d1": 1}}})
    data = load_beir(tmp_path)
    assert data.corpus == ["Cats sit on mats", "dogs bark"]
    assert data.corpus_ids == ["d1", "d2"]
    assert data.query_ids == ["q1", "q2"] and data.queries == ["cat mats", "barking"]
    assert dict(data.qrels) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}}
    assert load_beir(tmp_path, "train").query_ids == ["q3"]
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        load_beir(tmp_path, "dev")
