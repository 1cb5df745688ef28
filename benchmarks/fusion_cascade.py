"""How deep must the MiniLM bi-encoder look inside the fusion reranker? A cascade measured.

The fusion reranker's cost is almost all MiniLM (SPLADE-tiny runs ~10x cheaper). With
``bi_encoder_depth=N`` the cheap columns (SPLADE and the first stage) score every candidate,
their weighted z-scores pick the top N, and only those N get MiniLM and the full fusion (the rest
keep their cheap order below them). This script scores every candidate once with the real
rerankers and replays the fusion for each N, so every depth is compared on the same columns:

- SciFact *train* (BM25 top-100, the set the fusion weights were learned on) picks N;
- TREC DL19 (BM25 top-100), NovelEval-2306, SciFact test and NFCorpus test (BM25 top-100) are the
  sets it is then checked on.

Prints a table of nDCG@10 per depth and writes benchmarks/results/fusion_cascade.json.

    python benchmarks/fusion_cascade.py [--scifact-train 300] [--depths 100 60 50 40 30 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.fusion_weights import bm25_candidates, read_jsonl  # noqa: E402
from mmrag.eval.trec import evaluate, read_qrels  # noqa: E402
from mmrag.rerankers.fusion import cascade_order  # noqa: E402
from mmrag.types import Candidate  # noqa: E402

DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def beir_set(folder: Path, split: str, limit: int | None, depth: int = 100):
    """(queries as (qid, text, [Candidate]), qrels) from a BEIR folder, BM25 top ``depth``."""
    docs = read_jsonl(folder / "corpus.jsonl")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    queries = [q for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in qrels][:limit]
    cands = bm25_candidates(docs, queries, depth)
    out = []
    for q in queries:
        cs = [Candidate(id=docs[i]["_id"], text=(docs[i].get("title", "") + " " + docs[i]["text"]).strip(), score=s)
              for i, s in cands[q["_id"]]]
        out.append((q["_id"], q["text"], cs))
    return out, {q: qrels[q] for q, _, _ in out}


def rank_llm_set(folder: Path):
    from mmrag.eval.rerank import load_rerank_set

    queries, qrels = load_rerank_set(folder)
    return [(q.qid, q.query, q.candidates) for q in queries], qrels


def columns(fusion, sets: dict) -> dict:
    """Per set and query: the raw (bi-encoder, splade, first stage) columns, scored once."""
    out = {}
    for name, (queries, _) in sets.items():
        t0 = time.perf_counter()
        out[name] = {qid: fusion.component_scores(text, cands) for qid, text, cands in queries}
        print(f"  scored {name}: {len(queries)} queries in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    return out


def ndcg_at_depth(fusion, queries, qrels, cols, depth: int) -> float:
    run = {}
    for qid, _, cands in queries:
        order, fused = cascade_order(cols[qid], fusion.weights + [fusion.first_stage_weight], fusion.cheap_mask(),
                                     depth, fusion.method, fusion.normalize, fusion.rrf_k)
        n = len(order)
        run[qid] = {cands[i].id: float(n - r) for r, i in enumerate(order)}
    return evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scifact-train", type=int, default=300, help="first N SciFact train queries (picks the depth)")
    ap.add_argument("--depths", type=int, nargs="+", default=[100, 60, 50, 40, 30, 20])
    ap.add_argument("--tolerance", type=float, default=0.002,
                    help="the smallest depth within this nDCG@10 of the full fusion on SciFact train is picked")
    args = ap.parse_args()

    from mmrag.rerankers import load

    t_start = time.perf_counter()
    fusion = load("fusion")
    sets = {"scifact-train": beir_set(DATA / "beir-scifact", "train", args.scifact_train),
            "dl19": rank_llm_set(DATA / "trec-dl19-passage-bm25top100"),
            "noveleval": rank_llm_set(DATA / "noveleval-2306"),
            "scifact-test": beir_set(DATA / "beir-scifact", "test", None),
            "nfcorpus-test": beir_set(DATA / "nfcorpus-test-preprocessed", "test", None)}
    cols = columns(fusion, sets)
    table = {name: {d: ndcg_at_depth(fusion, q, qr, cols[name], d) for d in args.depths}
             for name, (q, qr) in sets.items()}
    full = table["scifact-train"][max(args.depths)]
    picked = min(d for d in args.depths if table["scifact-train"][d] >= full - args.tolerance)

    print(f"{'set':<15}" + "".join(f"{'N=' + str(d):>9}" for d in args.depths))
    for name, row in table.items():
        print(f"{name:<15}" + "".join(f"{row[d]:9.4f}" for d in args.depths))
    print(f"picked on SciFact train (within {args.tolerance} of the full fusion): N={picked}")

    import onnxruntime

    result = {
        "ndcg10": {name: {str(d): v for d, v in row.items()} for name, row in table.items()},
        "loss_vs_full_at_picked": {name: row[max(args.depths)] - row[picked] for name, row in table.items()},
        "picked_depth": picked, "tolerance": args.tolerance,
        "queries": {name: len(q) for name, (q, _) in sets.items()},
        "first_stage": {"dl19": "BM25 top-100 (rank_llm JSON)", "noveleval": "the set's 20 candidates",
                        "beir sets": "bm25s k1=0.9 b=0.4 stem+stop top-100"},
        "seconds": time.perf_counter() - t_start, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "versions": {"onnxruntime": onnxruntime.__version__},
    }
    out = ROOT / "benchmarks" / "results" / "fusion_cascade.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
