"""Ranking training data from disk → ``RankingExample`` lists (what every ``mmrag train reranker`` method reads).

Three sources:
- a BEIR folder (corpus.jsonl, queries.jsonl, qrels/{split}.tsv): candidates are mined per query,
  either from mmrag's own index of the corpus (``candidates="index"``: the preset's first stage,
  the same search the reranker will sit behind) or from BM25 over the corpus (``"bm25"``, fast);
- a TREC run + qrels + the corpus and query texts (JSONL as BEIR, or TSV ``id<TAB>text``);
- rank_llm JSON (``[{"query", "hits": [{"qid","docid","content","score"}]}]``, as TREC DL19's
  ``bm25_top100_dl19.json`` or NovelEval's ``data.json``) + TREC qrels.

Candidates keep first-stage order. With ``include_positives`` a labelled positive the first
stage missed is appended after them (training needs a positive; the order above it is intact).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError
from mmrag.eval.trec import read_qrels, read_run
from mmrag.train.ranking_types import RankingExample

CANDIDATE_SOURCES = ("index", "bm25")


def read_texts(path: str | Path) -> dict[str, str]:
    """id → text from BEIR JSONL (``_id``/``id``, ``title``, ``text``) or a TSV of ``id<TAB>text``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    out: dict[str, str] = {}
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path}:{n}: not a JSON line ({e.msg})") from None
                key = row.get("_id", row.get("id"))
                if key is None:
                    raise ConfigError(f"{path}:{n}: a row needs '_id' (BEIR) or 'id'")
                title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
                out[str(key)] = f"{title}\n{text}" if title else text
        return out
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row:
                continue
            if len(row) < 2:
                raise ConfigError(f"{path}:{n}: expected 'id<TAB>text' (or use BEIR .jsonl)")
            out[row[0]] = " ".join(row[1:]) if len(row) > 2 else row[1]
    return out


def _example(qid: str, query: str, ranked: list[str], texts: dict[str, str], labels: dict[str, int],
             depth: int, include_positives: bool) -> RankingExample:
    ranked = list(dict.fromkeys(d for d in ranked if d != qid and d in texts))[:depth]
    if include_positives:
        ranked += [d for d, g in labels.items() if g > 0 and d in texts and d not in ranked]
    return RankingExample(qid, query, [(d, texts[d]) for d in ranked], {d: int(g) for d, g in labels.items()})


def _judged(qrels: dict, queries: dict[str, str], limit: int | None, where: str) -> list[str]:
    qids = [q for q in qrels if q in queries and any(g > 0 for g in qrels[q].values())]
    if not qids:
        raise ConfigError(f"{where}: no query has both a text and a positive label in the qrels")
    return qids[:limit] if limit else qids


def from_beir(folder: str | Path, split: str = "train", *, candidates: str = "index", depth: int = 30,
              limit: int | None = None, include_positives: bool = True, config: Any = None,
              progress: bool = True) -> list[RankingExample]:
    """Queries of ``qrels/{split}.tsv`` with their top ``depth`` candidates from ``candidates``."""
    from mmrag.eval.retrieval import beir_paths

    folder = Path(folder)
    corpus_path, queries_path, qrels_path = beir_paths(folder, split, "--beir", ConfigError)
    if candidates not in CANDIDATE_SOURCES:
        raise ConfigError(f"candidates must be one of {', '.join(CANDIDATE_SOURCES)}, got {candidates!r}")
    texts, queries, qrels = read_texts(corpus_path), read_texts(queries_path), read_qrels(qrels_path)
    qids = _judged(qrels, queries, limit, str(qrels_path))
    if candidates == "bm25":
        ranked = bm25_rankings(texts, [queries[q] for q in qids], depth + 1, config)
    else:
        ranked = index_rankings(folder, [queries[q] for q in qids], depth + 1, config, progress)
    return [_example(q, queries[q], r, texts, qrels[q], depth, include_positives) for q, r in zip(qids, ranked)]


def bm25_rankings(texts: dict[str, str], queries: list[str], depth: int, config: Any = None) -> list[list[str]]:
    """Top ``depth`` doc ids per query by BM25 (the index's tokeniser, k1 and b)."""
    import numpy as np

    from mmrag.config import Config, load_config
    from mmrag.indexes.sparse import _bm25s, tokenize

    cfg = (config if isinstance(config, Config) else load_config(config)).index
    ids = list(texts)
    vocab: dict[str, int] = {}
    docs = [[vocab.setdefault(t, len(vocab)) for t in terms] for terms in tokenize([texts[i] for i in ids])]
    model = _bm25s().BM25(k1=cfg.bm25_k1, b=cfg.bm25_b)
    model.index((docs, vocab), show_progress=False)
    out = []
    for terms in tokenize(queries):
        tok_ids = model.get_tokens_ids(terms)
        scores = np.asarray(model.get_scores_from_ids(tok_ids)) if tok_ids else np.zeros(len(ids))
        top = np.argsort(-scores, kind="stable")[:depth]
        out.append([ids[j] for j in top if scores[j] > 0])
    return out


def index_rankings(folder: Path, queries: list[str], depth: int, config: Any,
                   progress: bool) -> list[list[str]]:
    """Top ``depth`` doc ids per query from mmrag's index of the BEIR corpus (built once, cached
    where ``mmrag eval retrieval`` keeps it, so both see the same first stage)."""
    from tqdm import tqdm

    from mmrag.eval.retrieval import open_beir_index

    ix, page_doc = open_beir_index(folder, config, progress)
    out = []
    for q in tqdm(queries, desc="mine candidates", unit="query", disable=not progress):
        ps = ix.search_pages(q, depth)
        out.append([page_doc[int(p)] for p in ps.page_ids])
    return out


def from_trec_run(run: str | Path, qrels: str | Path, corpus: str | Path, queries: str | Path, *,
                  depth: int = 30, limit: int | None = None, include_positives: bool = True) -> list[RankingExample]:
    """A TREC run (``qid Q0 docid rank score tag``) ranks the candidates; texts come from the files."""
    if not Path(run).is_file():
        raise ConfigError(f"run file not found: {run}")
    if not Path(qrels).is_file():
        raise ConfigError(f"qrels file not found: {qrels}")
    the_run, labels = read_run(run), read_qrels(qrels)
    texts, query_texts = read_texts(corpus), read_texts(queries)
    out = []
    for q in _judged(labels, query_texts, None, str(qrels)):
        if q not in the_run:
            continue
        ranked = [d for d, _ in sorted(the_run[q].items(), key=lambda kv: -kv[1])]
        out.append(_example(q, query_texts[q], ranked, texts, labels[q], depth, include_positives))
    if not out:
        raise ConfigError(f"{run}: no query of the run has a positive label in {qrels}")
    return out[:limit] if limit else out


def from_rank_llm(path: str | Path, qrels: str | Path, *, depth: int = 100,
                  limit: int | None = None) -> list[RankingExample]:
    """rank_llm JSON (candidates with their text, first-stage order) + TREC qrels."""
    from mmrag.eval.rerank import read_rank_llm

    if not Path(qrels).is_file():
        raise ConfigError(f"qrels file not found: {qrels}")
    labels = read_qrels(qrels)
    out = []
    for q in read_rank_llm(path):
        if q.qid not in labels:
            continue
        cands = list({c.id: c for c in q.candidates[:depth]}.values())
        out.append(RankingExample(q.qid, q.query, [(c.id, c.text) for c in cands], dict(labels[q.qid])))
    if not out:
        raise ConfigError(f"{path}: no query has labels in {qrels} (do the qids match?)")
    return out[:limit] if limit else out
