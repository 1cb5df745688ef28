"""What every reranker-training method reads: one query, its candidates in first-stage order, its labels.

Loaders (BEIR folders, TREC runs + qrels, rank_llm JSON) produce these; methods
(`mmrag.train.methods`) consume them, so a method never parses a file format itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RankingExample:
    qid: str
    query: str
    candidates: list[tuple[str, str]]  # (doc_id, text), in first-stage order
    relevance: dict[str, int] = field(default_factory=dict)  # doc_id -> graded label; absent = 0
    images: list[str] | None = None  # page image paths aligned with candidates (multimodal methods)

    def label(self, doc_id: str) -> int:
        return int(self.relevance.get(doc_id, 0))

    def positives(self) -> list[str]:
        return [d for d, _ in self.candidates if self.label(d) > 0]
