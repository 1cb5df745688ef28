"""Cross-encoder reranker: any sequence-classification model reads (query, passage) pairs.

One output logit (MS MARCO cross-encoders such as ``cross-encoder/ms-marco-MiniLM-L-6-v2``) is
the score; with two or more labels the score is the log-probability of label ``positive_label``.
``backend="openai"`` asks a server's rerank API instead (``POST {base_url}/rerank``: vLLM serving a
cross-encoder, e.g. ``vllm serve BAAI/bge-reranker-v2-m3``; Jina and llama.cpp's server speak it too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.rerankers import hf
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"


class CrossEncoderReranker(Reranker):
    """Batched pairwise relevance scoring with a sequence-classification head."""

    name = "cross-encoder"

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 32, max_length: int = 512,
                 positive_label: int = 1, device: str | None = None, backend: str = "transformers",
                 base_url: str | None = None, api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 2):
        self.client: Any = None
        if backend == "openai":
            from mmrag.generate.openai_compatible import chat_client

            self.client = chat_client(base_url, model, api_key=api_key, timeout=timeout, retries=retries)
        elif backend != "transformers":
            raise ConfigError(f"unknown backend {backend!r}; use transformers or openai")
        self.model_id = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.positive_label = positive_label
        self.device = device
        self._lm: tuple[Any, Any] | None = None

    @property
    def lm(self) -> tuple[Any, Any]:
        if self._lm is None:
            dev = hf.pick_device(self.device)

            def build() -> tuple[Any, Any]:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                try:
                    model = AutoModelForSequenceClassification.from_pretrained(self.model_id)
                    tok = AutoTokenizer.from_pretrained(self.model_id)
                except (OSError, ValueError) as e:
                    from mmrag.errors import ModelNotFound

                    raise ModelNotFound(
                        f"could not load cross-encoder {self.model_id!r} ({e}); no cross-encoder weights ship "
                        "offline: give a local folder or a cached Hugging Face id") from None
                return model.to(dev).eval(), tok

            self._lm = hf.cached(("cross", self.model_id, dev), build)
            if self._lm[0].config.num_labels > 1 and not 0 <= self.positive_label < self._lm[0].config.num_labels:
                raise ConfigError(f"positive_label {self.positive_label} is not a label of {self.model_id}")
        return self._lm

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        if self.client is not None:
            return [s for b in range(0, len(candidates), self.batch_size)
                    for s in self.client.rerank(query, [c.text for c in candidates[b:b + self.batch_size]])]
        import torch

        model, tok = self.lm
        order = sorted(range(len(candidates)), key=lambda i: len(candidates[i].text))
        out = np.zeros(len(candidates))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            enc = tok([query] * len(idx), [candidates[i].text for i in idx], padding=True,
                      truncation="only_second", max_length=self.max_length, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            if logits.shape[-1] == 1:
                s = logits[:, 0]
            else:
                s = torch.log_softmax(logits, dim=-1)[:, self.positive_label]
            out[idx] = s.cpu().numpy()
        return out.tolist()
