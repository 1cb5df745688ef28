"""Any sentence-transformers model (hub id or local folder): batched, float32, L2-normalised.

``runtime`` runs batches (documents, passages) through ONNX Runtime, float32 or int8
(``onnx_runtime``), for models loaded from a local folder; ``query_runtime`` does the same for
single queries (float32 ONNX on one thread by default).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmrag.encoders import onnx_runtime
from mmrag.encoders.base import Encoder, l2_normalise
from mmrag.errors import ModelNotFound


class SentenceTransformerEncoder(Encoder):
    """A text encoder read by sentence-transformers; ``query_prompt`` is prepended to queries."""

    name = "sentence-transformers"

    def __init__(self, model: str, batch_size: int = 32, device: str | None = None,
                 query_prompt: str = "", document_prompt: str = "", max_seq_length: int | None = None,
                 revision: str | None = None, progress: bool = False, query_threads: int | None = 1,
                 query_runtime: str = "auto", runtime: str = "torch", threads: int | None = None):
        self.model_id = str(model)
        self.revision = revision
        self.batch_size = int(batch_size)
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.progress = progress
        self.query_threads = query_threads
        if query_runtime not in ("auto", "onnx", "torch"):
            raise ValueError(f"query_runtime must be auto, onnx or torch, not {query_runtime!r}")
        self.query_runtime = query_runtime
        self.runtime = onnx_runtime.check_runtime(runtime)
        self.threads = threads
        self._model_dir = str(model)
        self._device = device or "cpu"
        self._max_seq_length = int(max_seq_length) if max_seq_length else None
        self._st: Any = None  # loaded on first need: a checked ONNX export starts without PyTorch
        self._onnx: Any = None  # built on the first query: index builds never pay for the export
        self._onnx_batch: Any = None  # built on the first batch: searches never pay for the export
        found = None
        if self.runtime != "torch" and self._device == "cpu" and onnx_runtime.installed():
            from mmrag.bundled import cache_dir
            from mmrag.encoders.onnx_fast import find

            found = find(self._model_dir, cache_dir(), self.runtime)
        if found is not None:  # its dimension is known: PyTorch loads only if the ONNX check fails
            self.dim = int(found[1]["dim"])
        else:
            m = self._model
            self.dim = int(m.get_embedding_dimension() if hasattr(m, "get_embedding_dimension")
                           else m.get_sentence_embedding_dimension())

    @property
    def _model(self) -> Any:
        """The sentence-transformers model, loaded on first use."""
        if self._st is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._st = SentenceTransformer(self._model_dir, device=self._device, revision=self.revision)
            except (OSError, ValueError) as e:  # not on disk and no hub access
                raise ModelNotFound(
                    f"cannot load sentence-transformers model {self._model_dir!r} ({e}); give a local folder or "
                    "run where the Hugging Face hub is reachable"
                ) from None
            if self._max_seq_length:
                self._st.max_seq_length = self._max_seq_length
        return self._st

    def encode_text(self, texts: Sequence[str], *, is_query: bool = False, torch_only: bool = False) -> np.ndarray:
        """``torch_only`` skips the ONNX batch path (``query_runtime: torch`` uses it)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.query_prompt if is_query else self.document_prompt
        batch = [prefix + t for t in texts] if prefix else list(texts)
        onnx = False if torch_only else self._batch_runtime()
        if onnx:
            return l2_normalise(onnx(batch))
        vectors = self._model.encode(batch, batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=False, show_progress_bar=self.progress)
        return l2_normalise(vectors)

    def _batch_runtime(self) -> Any:
        """The ONNX Runtime path for batches (``runtime``), or False for PyTorch."""
        if self._onnx_batch is None:
            self._onnx_batch = False
            if self.runtime != "torch":
                from mmrag.bundled import cache_dir
                from mmrag.encoders.onnx_query import build_first, load_fast

                threads = self.threads or onnx_runtime.default_threads()
                self._onnx_batch = (load_fast(self._model_dir, cache_dir(), threads, self.runtime, self._max_seq_length)
                                    or build_first(self._model, self._model_dir, cache_dir(), threads, self.runtime)
                                    or False)
        return self._onnx_batch

    def _onnx_query(self) -> Any:
        """The ONNX Runtime path for single queries, or False where it is off or unavailable."""
        if self._onnx is None:
            self._onnx = False
            if self.query_runtime != "torch":
                from mmrag.bundled import cache_dir
                from mmrag.encoders.onnx_query import build, load_fast

                self._onnx = (load_fast(self._model_dir, cache_dir(), self.query_threads or 1, "onnx", self._max_seq_length)
                              or build(self._model, self._model_dir, cache_dir(), threads=self.query_threads or 1)
                              or False)
                if self._onnx is False and self.query_runtime == "onnx":
                    raise RuntimeError("query_runtime: onnx was asked for but the model cannot be exported "
                                       "(pip install onnx onnxruntime; plain transformer + pooling models only)")
        return self._onnx

    def encode_query(self, query: str) -> np.ndarray:
        """One short text: ONNX Runtime where it can run the model (2x faster than PyTorch eager
        here), else PyTorch. Intra-op threads only add synchronisation, which on a busy CPU costs
        far more than it saves (measured here: 1.8 s with 2 threads vs 0.23 s with 1 at load 20)."""
        onnx = self._onnx_query()
        if onnx:
            return l2_normalise(onnx([self.query_prompt + query]))
        if not self.query_threads:
            return self.encode_text([query], is_query=True, torch_only=True)
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(min(self.query_threads, before))
        try:
            return self.encode_text([query], is_query=True, torch_only=True)
        finally:
            torch.set_num_threads(before)
