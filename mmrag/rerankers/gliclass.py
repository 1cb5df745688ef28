"""GLiClass as a zero-shot relevance scorer: the query is the text, the passages are the labels.

Passages go in chunks of 25 labels (GLiClass's default label budget); a passage's score is its
label logit. Uses the ``gliclass`` package (``pip install 'mmrag[rerank]'``); real checkpoints:
``knowledgator/gliclass-base-v1.0`` or ``knowledgator/gliclass-modern-base-v2.0-init``.
"""

from __future__ import annotations

from typing import Any

from mmrag.errors import MissingDependency, ModelNotFound
from mmrag.rerankers import hf
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate

DEFAULT_MODEL = "knowledgator/gliclass-base-v1.0"


class GLiClassReranker(Reranker):
    """Zero-shot GLiClass relevance: one forward pass per chunk of candidates."""

    name = "gliclass"

    def __init__(self, model: str = DEFAULT_MODEL, *, chunk: int = 25, max_words: int | None = 64,
                 max_length: int = 1024, prompt: str | None = None, device: str | None = None):
        self.model_id = model
        self.chunk = chunk
        self.max_words = max_words
        self.max_length = max_length
        self.prompt = prompt
        self.device = device
        self._pipe: Any = None

    @property
    def pipe(self) -> Any:
        if self._pipe is None:
            try:
                from gliclass import GLiClassModel, ZeroShotClassificationPipeline
            except ImportError:
                raise MissingDependency("the gliclass reranker needs gliclass: pip install 'mmrag[rerank]'") from None
            from transformers import AutoTokenizer

            dev = hf.pick_device(self.device)

            def build() -> Any:
                try:
                    model = GLiClassModel.from_pretrained(self.model_id)
                    tok = AutoTokenizer.from_pretrained(self.model_id)
                except (OSError, ValueError) as e:
                    raise ModelNotFound(f"could not load GLiClass model {self.model_id!r}: {e}") from None
                return ZeroShotClassificationPipeline(model, tok, max_classes=self.chunk, max_length=self.max_length,
                                                      classification_type="multi-label", device=dev,
                                                      progress_bar=False)

            self._pipe = hf.cached(("gliclass", self.model_id, self.chunk, self.max_length, dev), build)
        return self._pipe

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        labels = [hf.truncate_words(c.text, self.max_words) for c in candidates]
        out: list[float] = []
        for b in range(0, len(labels), self.chunk):
            part = labels[b:b + self.chunk]
            res = self.pipe.get_embeddings([query], part, batch_size=1, prompt=self.prompt)
            out.extend(float(x) for x in res[0]["logits"][: len(part)])
        return out
