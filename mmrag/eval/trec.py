"""TREC/BEIR file formats and metric computation through ir-measures (trec_eval semantics).

nDCG uses linear gain as trec_eval does; e.g. the BM25 order of TREC DL19 gives 0.5058.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping

Qrels = dict[str, dict[str, int]]  # query id → doc id → grade
Run = dict[str, dict[str, float]]  # query id → doc id → score


def read_qrels(path: str | Path) -> Qrels:
    """Read TREC qrels (``qid 0 docid grade``) or BEIR TSV (header ``query-id corpus-id score``)."""
    qrels: Qrels = defaultdict(dict)
    with open(path, newline="") as f:
        first = f.readline()
        f.seek(0)
        if "\t" in first and not first.split("\t")[0].strip().isdigit() and "query" in first.lower():
            reader = csv.reader(f, delimiter="\t")
            next(reader)
            for row in reader:
                if len(row) >= 3:
                    qrels[row[0]][row[1]] = int(float(row[2]))
        else:
            for line in f:
                parts = line.split()
                if len(parts) >= 4:
                    qrels[parts[0]][parts[2]] = int(float(parts[3]))
                elif len(parts) == 3:  # BEIR TSV without header
                    qrels[parts[0]][parts[1]] = int(float(parts[2]))
    return dict(qrels)


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "mmrag") -> None:
    """Write a TREC run file, each query's docs sorted by score (best first)."""
    with open(path, "w") as f:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (doc, score) in enumerate(ranked, 1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")


def read_run(path: str | Path) -> Run:
    run: Run = defaultdict(dict)
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                run[parts[0]][parts[2]] = float(parts[4])
    return dict(run)


def run_from_rankings(rankings: Mapping[str, Iterable[str]]) -> Run:
    """Turn ordered doc-id lists into a run whose scores keep that order."""
    out: Run = {}
    for qid, docs in rankings.items():
        docs = list(dict.fromkeys(docs))
        out[qid] = {d: float(len(docs) - i) for i, d in enumerate(docs)}
    return out


def evaluate(qrels: Qrels, run: Run, measures: Iterable[str], per_query: bool = False) -> dict:
    """Aggregate (mean over judged queries) metrics by name, e.g. "nDCG@10", "R@100", "R(rel=2)@100".

    Queries of the run that have no qrels are ignored (BEIR convention), and judged queries
    missing from the run count as zero, as trec_eval -c does.
    """
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels}
    for q in qrels:
        run.setdefault(q, {})
    result = {str(m): float(v) for m, v in ir_measures.calc_aggregate(parsed, qrels, run).items()}
    if per_query:
        pq: dict[str, dict[str, float]] = defaultdict(dict)
        for m in ir_measures.iter_calc(parsed, qrels, run):
            pq[m.query_id][str(m.measure)] = float(m.value)
        result["per_query"] = dict(pq)
    return result


class Timer:
    """Wall-clock seconds of a block: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
