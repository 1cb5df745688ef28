"""``mmrag eval rerank``: rerank first-stage candidates of a standard set, nDCG@10 and ms/query.

Reads rank_llm's format (a JSON list of ``{"query", "hits": [{"qid","docid","content","score"}]}``)
plus TREC qrels in the same folder: TREC DL19's ``bm25_top100_dl19.json`` +
``qrels.dl19-passage.txt``, NovelEval's ``data.json`` + ``qrels.txt``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError
from mmrag.eval.trec import evaluate, read_qrels, write_run
from mmrag.types import Candidate


@dataclass
class RerankQuery:
    qid: str
    query: str
    candidates: list[Candidate] = field(default_factory=list)


def _find(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise ConfigError(f"{folder} has no {what} (looked for {', '.join(patterns)}): give a rank_llm "
                      "top-k JSON + TREC qrels folder such as trec-dl19-passage-bm25top100")


def load_rerank_set(dataset: str | Path) -> tuple[list[RerankQuery], dict[str, dict[str, int]]]:
    """Queries with their first-stage candidates (best first) and the qrels."""
    folder = Path(dataset)
    if not folder.is_dir():
        raise ConfigError(f"dataset folder not found: {folder}")
    data_file = _find(folder, ("data.json", "*top*.json", "*.json"), "candidates JSON")
    qrels_file = _find(folder, ("qrels*.txt", "qrels*.tsv", "qrels/test.tsv"), "qrels file")
    queries = read_rank_llm(data_file)
    return queries, read_qrels(qrels_file)


def read_rank_llm(path: str | Path) -> list[RerankQuery]:
    """Queries with their candidates (best first) from one rank_llm JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"rank_llm JSON not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected rank_llm's list of {{\"query\", \"hits\": [...]}}")
    queries = []
    for i, item in enumerate(raw):
        hits = item.get("hits") or []
        qid = str(hits[0]["qid"]) if hits and "qid" in hits[0] else str(item.get("qid", i))
        ranked = sorted(hits, key=lambda h: h.get("rank", 0)) if all("rank" in h for h in hits) else hits
        cands = [Candidate(str(h["docid"]), h["content"], float(h.get("score", 0.0))) for h in ranked]
        queries.append(RerankQuery(qid, item["query"], cands))
    return queries


def rerank_run(queries: list[RerankQuery], reranker: Any, depth: int, progress: bool = False
               ) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Rerank each query's first ``depth`` candidates (the rest follow unchanged): run, seconds."""
    from tqdm import tqdm

    run: dict[str, dict[str, float]] = {}
    seconds: list[float] = []
    for q in tqdm(queries, desc="rerank", unit="query", disable=not progress):
        head, tail = q.candidates[:depth], q.candidates[depth:]
        t0 = time.perf_counter()
        ranked = reranker.rerank(q.query, head)
        seconds.append(time.perf_counter() - t0)
        n = len(q.candidates)
        run[q.qid] = {s.id: float(n - r) for r, s in enumerate(ranked)}
        for r, c in enumerate(tail, len(ranked)):
            run[q.qid].setdefault(c.id, float(n - r))
    return run, seconds


def reranker_options(config: Any, reranker: str, model: str | None) -> dict:
    """The config's options for ``reranker`` (when its ``reranker:`` section names it) + model."""
    from mmrag.config import Config, load_config

    cfg = config if isinstance(config, Config) else load_config(config)
    options: dict = {}
    if cfg.reranker is not None and cfg.reranker.name == reranker:
        options.update(cfg.reranker.options or {})
    if model:
        options["model"] = model
    return options


def evaluate_rerank(dataset: str | Path, *, reranker: str, model: str | None = None,
                    config: str | Path | None = None, depth: int = 100, limit: int | None = None,
                    out: str | Path | None = None, progress: bool = True) -> dict:
    """Rerank a rank_llm-format set with a registered reranker; nDCG@10 (linear gain) and ms/query."""
    from mmrag.rerankers import load

    if depth < 1:
        raise ConfigError("--depth must be at least 1")
    queries, qrels = load_rerank_set(dataset)
    queries = [q for q in queries if q.qid in qrels]
    if limit is not None:
        queries = queries[: max(limit, 0)]
    if not queries:
        raise ConfigError(f"no judged queries to evaluate in {dataset}")
    t0 = time.perf_counter()
    model_obj = load(reranker, **reranker_options(config, reranker, model))
    model_obj.rerank(queries[0].query, queries[0].candidates[:2])  # load weights before timing
    load_seconds = time.perf_counter() - t0
    run, seconds = rerank_run(queries, model_obj, depth, progress)
    judged = {q.qid: qrels[q.qid] for q in queries}
    metrics = evaluate(judged, run, ["nDCG@10"])
    result = {
        "nDCG@10": metrics["nDCG@10"],
        "ms_per_query": 1000.0 * sum(seconds) / len(seconds),
        "queries": len(queries),
        "reranker": reranker,
        "model": model,
        "depth": depth,
        "dataset": str(dataset),
        "load_seconds": load_seconds,
        "query_ids": [q.qid for q in queries],
    }
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="mmrag-eval-rerank-"))
    folder.mkdir(parents=True, exist_ok=True)
    write_run(run, folder / "run.trec", tag=f"mmrag-{reranker}")
    (folder / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    result["out"] = str(folder)
    return result
