"""Vectors in Milvus Lite vs FAISS segments: indexing throughput, hybrid search latency, agreement.

    python benchmarks/milvus_vectors.py [--chunks 20000] [--queries 100] [--dim 384]

The same synthetic corpus (documents of 2-chunk pages with real-looking words for BM25, and
seeded random unit vectors given to `Index.add`, so no model is timed) is indexed twice with
`index.vectors: faiss` (flat segments) and `index.vectors: milvus` (Milvus Lite FLAT, inside the
index folder). Each index then answers the same queries (hybrid: dense + BM25, min-max fusion);
the query vector comes from the tests' hashed-words encoder on both sides. Reported: chunks/s
of indexing, search p50/p95 in ms, the Milvus/FAISS ratios, and the share of queries whose top-10
pages are identical (exact search on both sides: expected 1.0).

Prints a table and writes benchmarks/results/milvus_vectors.json (figures, settings, CPU count,
load average, library versions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import package_versions  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "milvus_vectors.json"
sys.path.insert(0, str(ROOT))


def corpus(n_chunks: int, dim: int) -> tuple[list[tuple], list[np.ndarray]]:
    from tests.indexes.helpers import WORDS, make_doc

    rng = np.random.default_rng(0)
    docs, vectors = [], []
    per_doc = 8  # 4 pages of 2 chunks
    for i in range(n_chunks // per_doc):
        pages = [[" ".join(rng.choice(WORDS, 12)) + f" report {i} page {p}", " ".join(rng.choice(WORDS, 9))]
                 for p in range(4)]
        docs.append(make_doc(i, pages, {"group": str(i % 5)}))
        v = rng.standard_normal((per_doc, dim)).astype(np.float32)
        vectors.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return docs, vectors


def build(root: Path, docs: list, vectors: list, cfg, fields) -> float:
    from mmrag.indexes.index import Index

    t0 = time.perf_counter()
    with Index.open(root, fields, cfg, write=True) as ix:
        for d, v in zip(docs, vectors):
            ix.add(*d, vectors={"text": v})
    return time.perf_counter() - t0


def search(root: Path, cfg, fields, queries: list[str]) -> tuple[list[float], list[list]]:
    from mmrag.indexes.index import Index

    ix = Index.open(root, fields, cfg)
    try:
        ix.search(queries[0], k=10)  # load the snapshot and connect once, as a server does
        times, tops = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = ix.search(q, k=10)
            times.append(time.perf_counter() - t0)
            tops.append([(h.doc_id, h.page) for h in hits])
        return times, tops
    finally:
        ix.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    from mmrag.config import FieldConfig, IndexConfig
    from tests.hash_encoder import register
    from tests.indexes.helpers import WORDS

    register()
    fields = [FieldConfig(name="text", encoder="test-hash", input="chunks", options={"dim": args.dim})]
    docs, vectors = corpus(args.chunks, args.dim)
    rng = np.random.default_rng(1)
    queries = [" ".join(rng.choice(WORDS, 3)) + f" report {int(rng.integers(len(docs)))}" for _ in range(args.queries)]
    rows, tops = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("faiss", "milvus"):
            cfg = IndexConfig(vectors=backend, dense="flat", commit_docs=500, commit_seconds=600.0)
            root = Path(tmp) / backend
            seconds = build(root, docs, vectors, cfg, fields)
            times, tops[backend] = search(root, cfg, fields, queries)
            rows[backend] = {"index_seconds": round(seconds, 2), "chunks_per_s": round(args.chunks / seconds, 1),
                             "search_p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
                             "search_p95_ms": round(float(np.percentile(times, 95)) * 1000, 2)}
    agree = sum(a == b for a, b in zip(tops["faiss"], tops["milvus"])) / len(queries)
    ratios = {"index_time_milvus_over_faiss": round(rows["milvus"]["index_seconds"] / rows["faiss"]["index_seconds"], 2),
              "search_p50_milvus_over_faiss": round(rows["milvus"]["search_p50_ms"] / rows["faiss"]["search_p50_ms"], 2)}
    print(f"{'backend':8} {'index s':>8} {'chunks/s':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for b, r in rows.items():
        print(f"{b:8} {r['index_seconds']:8.2f} {r['chunks_per_s']:9.1f} {r['search_p50_ms']:8.2f} {r['search_p95_ms']:8.2f}")
    print(f"Milvus/FAISS: index time x{ratios['index_time_milvus_over_faiss']}, search p50 "
          f"x{ratios['search_p50_milvus_over_faiss']}; identical top-10 pages on {agree:.0%} of {len(queries)} queries")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "settings": {"chunks": args.chunks, "documents": len(docs), "queries": len(queries), "dim": args.dim,
                     "milvus_index": "FLAT", "faiss": "flat", "search": "hybrid k=10, candidates=100"},
        "results": rows, "ratios": ratios, "top10_identical_share": agree,
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "platform": platform.platform()},
        "versions": package_versions("mmrag", "faiss-cpu", "pymilvus", "milvus-lite", "numpy", python=True),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
