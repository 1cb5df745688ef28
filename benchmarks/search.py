"""Search latency and indexing throughput of the default preset, against the raw libraries.

    python benchmarks/search.py [--docs 500] [--queries 200] [--sizes 10000,100000]

1. Indexing throughput: the first ``--docs`` SciFact abstracts, chunked as `mmrag eval retrieval`
   does, indexed by `Index` (MiniLM + BM25 + SQLite + commits) vs bare MiniLM encoding of the
   same chunk texts (same loaded model, same batch size). Ratio = mmrag / bare chunks per s.
2. Hybrid search at 10k and 100k chunks: `Index.search` (query encoding, BM25 + FAISS candidates,
   exact cross-scoring, min-max fusion, page grouping, snippets from SQLite) vs raw calls on the
   same data (MiniLM query encoding + faiss IndexFlatIP.search + bm25s get_scores/top-k), and vs
   the same raw calls with the FAISS kind the preset gives the segments (HNSW at 100k under
   ``dense: auto``); each also with the query vector given, which times the index alone. Only
   the real SciFact chunks are encoded; the other chunks are synthesized: text = halves of two
   random SciFact abstracts (real vocabulary for BM25), vector = normalised mean of two real chunk
   vectors plus noise (encoding 100k chunks would take an hour on 2 cores). Latency does not
   depend on which vectors these are. Both sides encode the query with the same encoder
   (`encode_query`: ONNX Runtime where installed), so the ratio measures the index; the bare
   sentence-transformers (PyTorch) encoding of one query is timed beside them for reference.
3. RAM (RSS growth when the 100k index is opened and searched) and disk per 100k chunks.

Prints a table and writes benchmarks/results/search.json (figures, settings, CPU count, load
average, library versions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import package_versions  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "beir-scifact"
RESULTS = ROOT / "benchmarks" / "results" / "search.json"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def load_corpus() -> tuple[list[dict], list[str]]:
    from mmrag.eval.retrieval import read_jsonl

    corpus = list(read_jsonl(DATA / "corpus.jsonl"))
    queries = [q["text"] for q in read_jsonl(DATA / "queries.jsonl") if q.get("metadata", {}).get("split") == "test"]
    return corpus, queries


def throughput(corpus: list[dict], n_docs: int, enc, cfg) -> dict:
    """Chunks per second: Index.add + commit vs bare encoder.encode_text on the same chunks."""
    from mmrag.eval.retrieval import beir_page
    from mmrag.indexes.index import Index
    from mmrag.ingest import chunk_pages

    docs = []
    for r in corpus[:n_docs]:
        doc, page = beir_page(r)
        docs.append((doc, [page], chunk_pages([page], words=cfg.ingest.chunk_words)))
    texts = [c.text for _, _, cs in docs for c in cs]
    enc.encode_text(texts[:64])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(texts), 256):  # the batches Index uses
        enc.encode_text(texts[i:i + 256])
    bare = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with Index.open(Path(tmp) / "ix", cfg.fields, cfg.index, write=True, encoder_factory=lambda f: enc) as ix:
            for d in docs:
                ix.add(*d)
        full = time.perf_counter() - t0
    return {"docs": n_docs, "chunks": len(texts), "bare_encode_s": round(bare, 2), "index_s": round(full, 2),
            "bare_chunks_per_s": round(len(texts) / bare, 1), "index_chunks_per_s": round(len(texts) / full, 1),
            "ratio": round(bare / full, 3)}


def synthesize(corpus: list[dict], real_vecs: np.ndarray, n: int, seed: int = 0):
    """``n`` chunk texts and vectors built from real SciFact text and real MiniLM vectors."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    texts = []
    bodies = [r["text"].split() for r in corpus]
    for _ in range(n):
        a, b = rng.randrange(len(bodies)), rng.randrange(len(bodies))
        wa, wb = bodies[a], bodies[b]
        texts.append(" ".join(wa[: len(wa) // 2] + wb[len(wb) // 2:][:200]))
    ia = nrng.integers(0, len(real_vecs), n)
    ib = nrng.integers(0, len(real_vecs), n)
    vecs = real_vecs[ia] + real_vecs[ib] + 0.05 * nrng.standard_normal((n, real_vecs.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return texts, vecs.astype(np.float32)


def build_synthetic(root: Path, texts: list[str], vecs: np.ndarray, enc, cfg) -> float:
    """Two chunks per one-page document, vectors given (no encoding), committed every 5000 docs."""
    from mmrag.indexes.index import Index
    from mmrag.types import Chunk, Document, Page

    import dataclasses

    t0 = time.perf_counter()
    bulk = dataclasses.replace(cfg.index, commit_docs=5000)  # a bulk load: fewer, larger commits
    with Index.open(root, cfg.fields, bulk, write=True, encoder_factory=lambda f: enc) as ix:
        for d in range(0, len(texts), 2):
            doc_id = f"s{d // 2}"
            pair = texts[d:d + 2]
            page = Page(doc_id=doc_id, page_number=1, width=612, height=792, text="\n".join(pair))
            chunks = [Chunk(chunk_id=f"{doc_id}#1#{j}", doc_id=doc_id, page_number=1, text=t) for j, t in enumerate(pair)]
            ix.add(Document(doc_id=doc_id, path=f"synthetic/{doc_id}"), [page], chunks,
                   vectors={cfg.fields[0].name: vecs[d:d + 2]})
    return time.perf_counter() - t0


class _GivenQueries:
    """The encoder, except that queries come from a table: times the index alone."""

    def __init__(self, enc, vectors: dict):
        self._enc, self._vectors = enc, vectors

    def __getattr__(self, name):
        return getattr(self._enc, name)

    def encode_query(self, q: str):
        return self._vectors[q]


def pytorch_encoder(cfg):
    """The preset's encoder with ``query_runtime: torch``: one query through sentence-transformers
    on one PyTorch thread, as mmrag encoded queries before the ONNX path."""
    from mmrag.encoders import load

    field = cfg.fields[0]
    return load(field.encoder, **{**field.options, "query_runtime": "torch"})


def latency(root: Path, texts: list[str], vecs: np.ndarray, queries: list[str], enc, cfg) -> dict:
    """mmrag hybrid search vs raw FAISS + raw bm25s, end to end (query encoding included) and with
    the query vector given (the index alone). The raw dense side is a flat scan, and also the same
    FAISS kind as the preset gives the segments (HNSW under ``auto`` at this size)."""
    import bm25s
    import faiss

    from mmrag.indexes.dense import _make_index, segment_kind
    from mmrag.indexes.index import Index
    from mmrag.indexes.sparse import tokenize

    qvecs = {q: enc.encode_query(q) for q in queries}
    torch_enc = pytorch_encoder(cfg)
    rss0 = rss_mb()
    ix = Index.open(root, cfg.fields, cfg.index, encoder_factory=lambda f: enc)
    ix.search(queries[0], k=10)  # loads the snapshot
    rss_index = rss_mb() - rss0
    given = Index.open(root, cfg.fields, cfg.index, encoder_factory=lambda f: _GivenQueries(enc, qvecs))
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    kind = segment_kind(cfg.index.dense, len(vecs))
    same = flat
    if kind != "flat":
        same = _make_index(kind, vecs.shape[1], len(vecs), cfg.index)
        if not same.is_trained:
            same.train(vecs)
        same.add(vecs)
        if kind == "hnsw":
            same.hnsw.efSearch = cfg.index.hnsw_ef_search
    raw_bm25 = bm25s.BM25(k1=cfg.index.bm25_k1, b=cfg.index.bm25_b)
    raw_bm25.index(tokenize(texts), show_progress=False)
    depth = cfg.index.candidates

    def raw(q: str, dense, qv=None) -> None:
        qv = enc.encode_query(q) if qv is None else qv
        dense.search(qv.reshape(1, -1), depth)
        s = raw_bm25.get_scores(tokenize([q])[0] or [""])
        np.argpartition(-s, depth)[:depth]

    calls = {
        "mmrag": lambda q: ix.search(q, k=10),
        "raw_flat": lambda q: raw(q, flat),
        "raw_same_kind": lambda q: raw(q, same),
        "mmrag_given_vector": lambda q: given.search(q, k=10),
        "raw_flat_given_vector": lambda q: raw(q, flat, qvecs[q]),
        "raw_same_kind_given_vector": lambda q: raw(q, same, qvecs[q]),
        "query_encode": lambda q: enc.encode_query(q),
        "query_encode_pytorch": lambda q: torch_enc.encode_query(q),
    }
    for q in queries[:5]:
        for fn in calls.values():
            fn(q)
    times: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for i, q in enumerate(queries):  # interleaved, so machine load hits all alike, and in an order
        # that rotates per query, so no call always runs after the same one (whose memory traffic
        # would decide what is still in the CPU caches)
        for name in names[i % len(names):] + names[:i % len(names)]:
            fn = calls[name]
            t0 = time.perf_counter()
            fn(q)
            times[name].append(time.perf_counter() - t0)
    from mmrag.indexes.layout import disk_bytes

    p50 = {k: round(pct(v, 50), 2) for k, v in times.items()}
    p95 = {k: round(pct(v, 95), 2) for k, v in times.items()}
    return {"chunks": len(texts), "segments": len(ix.store.segments()), "raw_same_kind": kind,
            "mmrag_p50_ms": p50["mmrag"], "mmrag_p95_ms": p95["mmrag"],
            "raw_p50_ms": p50["raw_flat"], "raw_p95_ms": p95["raw_flat"],
            "query_encode_p50_ms": p50["query_encode"],
            "query_encode_pytorch_p50_ms": p50["query_encode_pytorch"],
            "query_runtime": "onnx" if getattr(enc, "_onnx", None) else "pytorch",
            "ratio_p50": round(p50["mmrag"] / p50["raw_flat"], 3), "ratio_p95": round(p95["mmrag"] / p95["raw_flat"], 3),
            "ratio_p50_vs_same_kind": round(p50["mmrag"] / p50["raw_same_kind"], 3),
            "given_vector": {"mmrag_p50_ms": p50["mmrag_given_vector"], "mmrag_p95_ms": p95["mmrag_given_vector"],
                             "raw_flat_p50_ms": p50["raw_flat_given_vector"],
                             "raw_same_kind_p50_ms": p50["raw_same_kind_given_vector"],
                             "ratio_p50_vs_flat": round(p50["mmrag_given_vector"] / p50["raw_flat_given_vector"], 3),
                             "ratio_p50_vs_same_kind": round(p50["mmrag_given_vector"]
                                                             / p50["raw_same_kind_given_vector"], 3)},
            "p50_ms": p50, "p95_ms": p95,
            "index_rss_mb": round(rss_index, 1), "disk_mb": round(disk_bytes(root) / 2**20, 1)}


def versions() -> dict:
    return package_versions("numpy", "faiss-cpu", "bm25s", "torch", "sentence-transformers", "transformers", "mmrag",
                            python=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=500, help="SciFact abstracts for the throughput run")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sizes", default="10000,100000")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"SciFact not found at {DATA} (set MMRAG_SHARED_DATA)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmrag.api import cached_encoder
    from mmrag.config import load_config

    cfg = load_config(ROOT / "configs" / "default.yaml")
    load_start = os.getloadavg()
    corpus, queries = load_corpus()
    queries = queries[: args.queries]
    enc = cached_encoder(cfg.fields[0])
    t0 = time.perf_counter()
    tp = throughput(corpus, args.docs, enc, cfg)
    from mmrag.eval.retrieval import beir_page
    from mmrag.ingest import chunk_pages

    real_texts = [c.text for r in corpus[: args.docs] for c in chunk_pages([beir_page(r)[1]], words=cfg.ingest.chunk_words)]
    real_vecs = enc.encode_text(real_texts)
    rows: list[dict] = []
    for n in [int(s) for s in args.sizes.split(",")]:
        texts, vecs = synthesize(corpus, real_vecs, n)
        with tempfile.TemporaryDirectory() as tmp:
            build_s = build_synthetic(Path(tmp) / "ix", texts, vecs, enc, cfg)
            row = latency(Path(tmp) / "ix", texts, vecs, queries, enc, cfg)
            row["build_s_vectors_given"] = round(build_s, 1)
            rows.append(row)
        write_results(tp, rows, cfg, args, load_start, t0, complete=False)  # keep what is measured so far
    result = write_results(tp, rows, cfg, args, load_start, t0, complete=True)
    print(f"indexing: {tp['index_chunks_per_s']} chunks/s vs bare MiniLM {tp['bare_chunks_per_s']} "
          f"→ ratio {tp['ratio']} (target ≥ 0.85; {tp['chunks']} chunks)")
    print(f"{'chunks':>8} {'mmrag p50':>10} {'p95':>8} {'raw flat':>9} {'raw same':>9} {'ratio':>6} "
          f"{'ratio same':>10} {'enc p50':>8} {'torch enc':>9} {'RAM MB':>7} {'disk MB':>8}")
    for r in rows:
        print(f"{r['chunks']:>8} {r['mmrag_p50_ms']:>10} {r['mmrag_p95_ms']:>8} {r['raw_p50_ms']:>9} "
              f"{r['p50_ms']['raw_same_kind']:>9} {r['ratio_p50']:>6} {r['ratio_p50_vs_same_kind']:>10} "
              f"{r['query_encode_p50_ms']:>8} {r['query_encode_pytorch_p50_ms']:>9} {r['index_rss_mb']:>7} "
              f"{r['disk_mb']:>8}")
    print("query vector given (the index alone):")
    for r in rows:
        g = r["given_vector"]
        print(f"{r['chunks']:>8} mmrag p50 {g['mmrag_p50_ms']} ms, raw flat {g['raw_flat_p50_ms']} ms "
              f"(x{g['ratio_p50_vs_flat']}), raw {r['raw_same_kind']} {g['raw_same_kind_p50_ms']} ms "
              f"(x{g['ratio_p50_vs_same_kind']})")
    print(f"per 100k chunks: RAM {result['per_100k_chunks']['ram_mb']} MB, disk {result['per_100k_chunks']['disk_mb']} MB; "
          f"load average {load_start[0]:.1f} → {result['machine']['loadavg_end'][0]:.1f} on {os.cpu_count()} CPUs")
    print(f"wrote {RESULTS}")
    return 0


def write_results(tp: dict, rows: list[dict], cfg, args, load_start, t0: float, complete: bool) -> dict:
    result = {
        "throughput": tp, "search": rows,
        "per_100k_chunks": {"ram_mb": round(rows[-1]["index_rss_mb"] * 100_000 / rows[-1]["chunks"], 1),
                            "disk_mb": round(rows[-1]["disk_mb"] * 100_000 / rows[-1]["chunks"], 1),
                            "from_chunks": rows[-1]["chunks"]} if rows else None,
        "targets": {"search_ratio_max": 1.2, "p50_ms_at_100k_max": 20, "throughput_ratio_min": 0.85},
        "settings": {"config": "configs/default.yaml", "fields": [f.encoder for f in cfg.fields],
                     "dense": cfg.index.dense, "fusion": cfg.index.fusion, "candidates": cfg.index.candidates,
                     "k": 10, "queries": args.queries, "docs": args.docs},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                    "platform": platform.platform()},
        "versions": versions(), "seconds": round(time.perf_counter() - t0, 1), "complete": complete,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(main())
