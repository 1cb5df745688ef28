"""BM25 with bm25s: PyStemmer English stemming and English stop words.

Chunk terms are stemmed once when a document is added and kept in the doc store, so each commit
rebuilds the BM25 matrix from stored terms (no re-tokenising) into a fresh immutable folder:
BM25's IDF is corpus-wide, so one consistent state per commit is what a reader must see.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mmrag.indexes.layout import new_tmp_dir, publish_dir

STEMMER_LANGUAGE = "english"
STOPWORDS = "en"


@functools.lru_cache(maxsize=1)
def _bm25s():
    """bm25s, with its logger back to WARNING (bm25s sets it to DEBUG on import)."""
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer(STEMMER_LANGUAGE)


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-case, drop English stop words, stem: the terms BM25 indexes and queries with."""
    if not texts:
        return []
    return _bm25s().tokenize(list(texts), stopwords=STOPWORDS, stemmer=_stemmer(), return_ids=False,
                          show_progress=False)


def build(parent: Path, name: str, rows: Iterable[tuple[int, str]], k1: float, b: float) -> Path:
    """Index ``(chunk id, space-joined terms)`` rows into ``parent/name`` atomically."""
    bm25s = _bm25s()

    vocab: dict[str, int] = {}
    ids: list[int] = []
    docs: list[list[int]] = []
    for chunk_id, terms in rows:
        ids.append(int(chunk_id))
        docs.append([vocab.setdefault(t, len(vocab)) for t in terms.split()])
    tmp = new_tmp_dir(parent, name)
    np.save(tmp / "chunk_ids.npy", np.asarray(ids, dtype=np.int64), allow_pickle=False)
    params = {"k1": k1, "b": b, "stemmer": STEMMER_LANGUAGE, "stopwords": STOPWORDS, "count": len(ids)}
    if ids:
        model = bm25s.BM25(k1=k1, b=b)
        model.index((docs, vocab), show_progress=False)
        model.save(tmp, show_progress=False, allow_pickle=False)
    (tmp / "state.json").write_text(json.dumps(params))
    return publish_dir(tmp, parent / name)


class SparseState:
    """One loaded BM25 state: full-corpus score vectors aligned with ``chunk_ids``."""

    def __init__(self, path: Path):
        bm25s = _bm25s()

        self.path = path
        self.params = json.loads((path / "state.json").read_text())
        self.chunk_ids = np.load(path / "chunk_ids.npy", allow_pickle=False)
        self.model = bm25s.BM25.load(path, load_corpus=False, mmap=False) if len(self.chunk_ids) else None

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed chunk for ``query`` (zeros when no term matches)."""
        out = np.zeros(len(self.chunk_ids), dtype=np.float32)
        if self.model is None:
            return out
        terms = tokenize([query])[0]
        ids = self.model.get_tokens_ids(terms)
        if not ids:
            return out
        return np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)

    def rows_of(self, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the score vector, found mask) of ``chunk_ids``."""
        pos = np.searchsorted(self.chunk_ids, chunk_ids)
        pos = np.minimum(pos, max(len(self.chunk_ids) - 1, 0))
        found = (self.chunk_ids[pos] == chunk_ids) if len(self.chunk_ids) else np.zeros(len(chunk_ids), bool)
        return pos, found
