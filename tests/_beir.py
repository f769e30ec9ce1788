"""BEIR-format folders for tests: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv."""

import json


def write_beir(folder, corpus, queries, splits):
    """Write a BEIR-format folder.

    corpus {id: (title, text)}, queries {id: text}, splits {name: {qid: {doc: grade}}}.
    """
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for i, (title, text) in corpus.items():
            fh.write(json.dumps({"_id": i, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for i, text in queries.items():
            fh.write(json.dumps({"_id": i, "text": text}) + "\n")
    for name, qrels in splits.items():
        lines = [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
        (folder / "qrels" / f"{name}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
