"""The Generator contract: ``answer(query, contexts) -> Answer`` with citations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from mmrag.types import Answer, Hit

NO_ANSWER = "The documents do not contain the answer."


class Generator(ABC):
    name: str = ""

    @abstractmethod
    def answer(self, query: str, contexts: Sequence[Hit]) -> Answer:
        """Answer ``query`` from ``contexts`` (best first); cite (doc, page, bbox)."""
