"""Learn the default fusion weights on SciFact *train* queries (never on DL19 or NovelEval).

BM25 (bm25s, k1 0.9, b 0.4, stemmed, stop words removed) retrieves the top ``--depth`` SciFact
abstracts for the first ``--queries`` train queries; MiniLM cosine and SPLADE-tiny dot products
score them; a grid over the weight simplex (z-scored components) picks the weights with the best
nDCG@10 on those train qrels. Prints a table and writes benchmarks/results/fusion_weights.json.

    python benchmarks/fusion_weights.py --queries 80 --depth 10
"""

from __future__ import annotations

import argparse
import itertools
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

from mmrag.eval.trec import evaluate, read_qrels  # noqa: E402
from mmrag.rerankers.fusion import fuse  # noqa: E402

DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "beir-scifact"


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def bm25_candidates(docs: list[dict], queries: list[dict], depth: int) -> dict[str, list[tuple[int, float]]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    corpus = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    q_tokens = bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    idx, scores = retriever.retrieve(q_tokens, k=depth, show_progress=False)
    return {q["_id"]: list(zip(idx[i].tolist(), scores[i].tolist())) for i, q in enumerate(queries)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=80, help="first N SciFact train queries with qrels")
    ap.add_argument("--depth", type=int, default=10, help="BM25 candidates per query")
    ap.add_argument("--step", type=float, default=0.05, help="grid step on the weight simplex")
    ap.add_argument("--max-words", type=int, default=128, help="truncate abstracts (keeps the run short on CPU)")
    args = ap.parse_args()

    from mmrag.rerankers.bi_encoder import BiEncoderReranker
    from mmrag.rerankers.splade import SpladeReranker

    t_start = time.perf_counter()
    docs = read_jsonl(DATA / "corpus.jsonl")
    qrels = read_qrels(DATA / "qrels" / "train.tsv")
    queries = [q for q in read_jsonl(DATA / "queries.jsonl") if q["_id"] in qrels][: args.queries]
    cands = bm25_candidates(docs, queries, args.depth)
    used = sorted({i for c in cands.values() for i, _ in c})
    texts = {i: " ".join((docs[i].get("title", "") + " " + docs[i]["text"]).split()[: args.max_words]) for i in used}

    bi, sp = BiEncoderReranker(max_words=args.max_words), SpladeReranker()
    t0 = time.perf_counter()
    doc_emb = dict(zip(used, bi.embed([texts[i] for i in used], is_query=False)))
    t_bi = time.perf_counter() - t0
    t0 = time.perf_counter()
    doc_sp = {}
    for b in range(0, len(used), 256):
        chunk = used[b:b + 256]
        for i, row in zip(chunk, sp.encode([texts[i] for i in chunk])):
            nz = np.nonzero(row)[0]
            doc_sp[i] = (nz, row[nz])
    t_sp = time.perf_counter() - t0
    q_emb = bi.embed([q["text"] for q in queries], is_query=True)
    q_sp = sp.encode([q["text"] for q in queries])

    columns: dict[str, list[np.ndarray]] = {}
    for qi, q in enumerate(queries):
        ids = [i for i, _ in cands[q["_id"]]]
        bm = np.array([s for _, s in cands[q["_id"]]])
        cos = np.array([float(doc_emb[i] @ q_emb[qi]) for i in ids])
        spl = np.array([float(q_sp[qi][doc_sp[i][0]] @ doc_sp[i][1]) for i in ids])
        columns[q["_id"]] = [cos, spl, bm]

    def ndcg(weights: tuple[float, ...], method: str = "weighted") -> float:
        run = {}
        for q in queries:
            fused = fuse(columns[q["_id"]], weights, method=method)
            run[q["_id"]] = {docs[i]["_id"]: float(s) for (i, _), s in zip(cands[q["_id"]], fused)}
        judged = {q["_id"]: qrels[q["_id"]] for q in queries}
        return evaluate(judged, run, ["nDCG@10"])["nDCG@10"]

    names = ["bi-encoder", "splade", "first-stage (bm25)"]
    singles = {n: ndcg(tuple(1.0 if j == k else 0.0 for j in range(3))) for k, n in enumerate(names)}
    rrf = ndcg((1.0, 1.0, 1.0), method="rrf")
    n_steps = int(round(1 / args.step))
    grid = []
    for a, b in itertools.product(range(n_steps + 1), repeat=2):
        if a + b <= n_steps:
            w = (a / n_steps, b / n_steps, (n_steps - a - b) / n_steps)
            grid.append((ndcg(w), w))
    grid.sort(key=lambda x: -x[0])
    best_score, best_w = grid[0]

    print(f"SciFact train: {len(queries)} queries, BM25 top-{args.depth}, {len(used)} unique abstracts")
    print(f"{'ranking':<34} {'nDCG@10':>8}")
    for n, v in singles.items():
        print(f"{n:<34} {v:8.4f}")
    print(f"{'RRF (k=60) of all three':<34} {rrf:8.4f}")
    print(f"{'weighted, best w=' + str(tuple(round(x, 2) for x in best_w)):<34} {best_score:8.4f}")

    import sentence_transformers
    import torch
    import transformers

    result = {
        "dataset": "beir-scifact train (qrels/train.tsv)", "queries": len(queries), "depth": args.depth,
        "unique_docs": len(used), "components": names, "normalize": "zscore",
        "single_ndcg10": singles, "rrf_ndcg10": rrf,
        "best": {"weights": list(best_w), "ndcg10": best_score},
        "top10": [{"weights": list(w), "ndcg10": s} for s, w in grid[:10]],
        "seconds": {"minilm_docs": t_bi, "splade_docs": t_sp, "total": time.perf_counter() - t_start},
        "settings": {"bm25": "bm25s k1=0.9 b=0.4 stem+stop", "grid_step": args.step, "max_words": args.max_words},
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "sentence_transformers": sentence_transformers.__version__},
    }
    out = ROOT / "benchmarks" / "results" / "fusion_weights.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
