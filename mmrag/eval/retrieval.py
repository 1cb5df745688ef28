"""``mmrag eval retrieval``: index a BEIR corpus with a preset and score its test queries.

Each corpus record becomes a one-page document (title, then text) chunked like any page, so
the numbers measure the same index and search code the CLI uses. This scores the first stage
(fused index search); a preset's reranker is measured by ``mmrag eval rerank``. The built index is cached
under mmrag's cache folder, keyed by the dataset and every setting that shapes the index, so
``--mode bm25|dense|hybrid`` runs reuse one build.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from mmrag.config import Config, load_config
from mmrag.errors import ConfigError, IndexNotFound
from mmrag.eval.trec import evaluate, read_qrels, write_run
from mmrag.types import Document, Page

MODES = ("config", "bm25", "dense", "hybrid")
MEASURES = ("nDCG@10", "R@100")


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def beir_page(record: dict) -> tuple[Document, Page]:
    """One BEIR record → a one-page document whose text is the title, then the body."""
    doc_id = str(record["_id"])
    title = (record.get("title") or "").strip()
    text = (record.get("text") or "").strip()
    body = f"{title}\n{text}" if title else text
    doc = Document(doc_id=doc_id, path=f"beir:{doc_id}", title=title, page_count=1)
    page = Page(doc_id=doc_id, page_number=1, width=612.0, height=792.0, text=body,
                content_hash=hashlib.sha256(body.encode()).hexdigest())
    return doc, page


def channels_for(mode: str, cfg: Config) -> list[str] | None:
    """Which channels a mode searches: the preset's own (None), BM25 only, the fields, or both."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r} is not one of: {', '.join(MODES)}")
    fields = [f.name for f in cfg.fields]
    if mode in ("bm25", "hybrid") and not cfg.index.sparse:
        raise ConfigError(f"--mode {mode} needs BM25: set index.sparse: true in the config")
    return {"config": None, "bm25": ["bm25"], "dense": fields, "hybrid": fields + ["bm25"]}[mode]


def build_key(corpus: Path, cfg: Config) -> str:
    """Hash of the dataset file and every setting that changes what the index holds."""
    import inspect

    from mmrag.ingest import chunk_pages

    st = corpus.stat()
    chunker = hashlib.sha256(inspect.getsource(chunk_pages).encode()).hexdigest()[:12]
    parts = [str(corpus.resolve()), st.st_size, int(st.st_mtime), cfg.ingest.chunk_words, chunker,
             [(f.name, f.encoder, f.input, f.options) for f in cfg.fields], cfg.index.sparse,
             cfg.index.bm25_k1, cfg.index.bm25_b, cfg.index.dense, cfg.index.hnsw_m, cfg.index.ivf_nlist,
             cfg.index.pq_m]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def build_index(corpus: Path, index_dir: Path, cfg: Config, progress: bool = True) -> float:
    """Index every corpus record (resumes a killed build); returns the seconds it took."""
    from tqdm import tqdm

    from mmrag.api import cached_encoder
    from mmrag.indexes.index import Index
    from mmrag.ingest import chunk_pages

    t0 = time.perf_counter()
    with Index.open(index_dir, cfg.fields, cfg.index, write=True, encoder_factory=cached_encoder) as ix:
        done = {d["doc_id"] for d in ix.documents()}
        records = [r for r in read_jsonl(corpus) if str(r["_id"]) not in done]
        for record in tqdm(records, desc="index corpus", unit="doc", disable=not progress or not records):
            doc, page = beir_page(record)
            ix.add(doc, [page], chunk_pages([page], words=cfg.ingest.chunk_words))
        ix.commit(progress=progress)
    return time.perf_counter() - t0


def beir_paths(dataset: Path, split: str, flag: str = "--dataset", error: type = IndexNotFound) -> tuple[Path, Path, Path]:
    """corpus.jsonl, queries.jsonl and qrels/{split}.tsv of a BEIR folder, or ``error`` naming the missing one."""
    paths = dataset / "corpus.jsonl", dataset / "queries.jsonl", dataset / "qrels" / f"{split}.tsv"
    for p in paths:
        if not p.is_file():
            raise error(f"{p} is missing: {flag} must be a BEIR folder with corpus.jsonl, queries.jsonl "
                        f"and qrels/{split}.tsv")
    return paths


def open_beir_index(dataset: str | Path, config: str | Path | Config | None = None, progress: bool = True,
                    index_dir: str | Path | None = None) -> tuple:
    """(index, page id → doc id) of a BEIR corpus, built once and cached by ``build_key``."""
    from mmrag.api import cached_encoder
    from mmrag.bundled import cache_dir
    from mmrag.indexes.index import Index

    dataset = Path(dataset)
    corpus = dataset / "corpus.jsonl"
    if not corpus.is_file():
        raise IndexNotFound(f"{corpus} is missing: give a BEIR folder with corpus.jsonl")
    cfg = config if isinstance(config, Config) else load_config(config)
    index_dir = Path(index_dir) if index_dir else cache_dir() / "eval-index" / f"{dataset.name}-{build_key(corpus, cfg)}"
    build_index(corpus, index_dir, cfg, progress)
    ix = Index.open(index_dir, cfg.fields, cfg.index, encoder_factory=cached_encoder)
    return ix, dict(ix.store.con.execute("SELECT id, doc_id FROM pages").fetchall())


def evaluate_beir(dataset: str | Path, *, config: str | Path | Config | None = None, split: str = "test",
                  mode: str = "config", limit: int | None = None, out: str | Path | None = None,
                  progress: bool = True, index_dir: str | Path | None = None, rerank: str | None = None,
                  model: str | None = None, rerank_depth: int = 30) -> dict:
    """nDCG@10 and R@100 (linear gain, trec_eval semantics) of one search mode on a BEIR dataset,
    optionally with reranker ``rerank`` (options from the config, ``model`` on top) reordering
    the first ``rerank_depth`` hits of each query."""
    from tqdm import tqdm

    from mmrag.bundled import cache_dir

    dataset = Path(dataset)
    corpus, queries_path, qrels_path = beir_paths(dataset, split)
    cfg = config if isinstance(config, Config) else load_config(config)
    channels = channels_for(mode, cfg)
    qrels = read_qrels(qrels_path)
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(queries_path) if str(q["_id"]) in qrels}
    qids = list(queries)[:limit] if limit else list(queries)
    index_dir = Path(index_dir) if index_dir else cache_dir() / "eval-index" / f"{dataset.name}-{build_key(corpus, cfg)}"
    t0 = time.perf_counter()
    ix, page_doc = open_beir_index(dataset, cfg, progress, index_dir)
    index_seconds = time.perf_counter() - t0
    run: dict[str, dict[str, float]] = {}
    latencies = []
    t0 = time.perf_counter()
    for qid in tqdm(qids, desc=f"search ({mode})", unit="query", disable=not progress):
        ts = time.perf_counter()
        ps = ix.search_pages(queries[qid], 100, channels=channels)
        latencies.append(time.perf_counter() - ts)
        run[qid] = {page_doc[int(p)]: float(s) for p, s in zip(ps.page_ids, ps.scores)
                    if page_doc[int(p)] != qid}  # BEIR ignores a hit on the query's own id
    seconds = time.perf_counter() - t0
    rerank_ms = None
    if rerank:
        run, rerank_ms = rerank_first_stage(run, queries, corpus, cfg, rerank, model, rerank_depth, progress)
    scores = evaluate({q: qrels[q] for q in qids}, run, MEASURES)
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="mmrag-eval-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_run(run, out_dir / "run.trec", tag=f"mmrag-{mode}")
    metrics = {
        "nDCG@10": scores["nDCG@10"], "R@100": scores["R@100"], "queries": len(qids),
        "seconds": round(seconds, 3), "mode": mode, "split": split, "dataset": str(dataset),
        "fusion": cfg.index.fusion, "weights": dict(cfg.index.weights),
        "ms_per_query_p50": round(1000 * float(np.median(latencies)), 2) if latencies else None,
        "index_seconds": round(index_seconds, 1), "index": str(index_dir),
        "run": str(out_dir / "run.trec"),
    }
    if rerank:
        metrics.update({"reranker": rerank, "model": model, "rerank_depth": rerank_depth, "rerank_ms_per_query": rerank_ms})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def rerank_first_stage(run: dict, queries: dict[str, str], corpus: Path, cfg: Config, reranker: str,
                       model: str | None, depth: int, progress: bool) -> tuple[dict, float]:
    """Rerank each query's first ``depth`` hits (the rest follow unchanged): the new run, ms/query."""
    from mmrag.eval.rerank import RerankQuery, rerank_run, reranker_options
    from mmrag.rerankers import load
    from mmrag.types import Candidate

    if depth < 1:
        raise ConfigError("--rerank-depth must be at least 1")
    texts = {str(r["_id"]): beir_page(r)[1].text for r in read_jsonl(corpus)}
    rq = [RerankQuery(q, queries[q], [Candidate(d, texts[d], s) for d, s in sorted(run[q].items(), key=lambda kv: -kv[1])])
          for q in run]
    model_obj = load(reranker, **reranker_options(cfg, reranker, model))
    new_run, seconds = rerank_run(rq, model_obj, depth, progress)
    return new_run, 1000.0 * sum(seconds) / max(len(seconds), 1)
