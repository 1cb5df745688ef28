"""Bi-encoder reranker: cosine similarity of query and passage embeddings.

``encoder=`` names a registered mmrag encoder (e.g. "minilm", "sentence-transformers" with
``model=``); without it, ``model`` (default: the bundled all-MiniLM-L6-v2) is loaded with
sentence-transformers directly and, with ``runtime`` onnx-int8 (the default) or onnx, run
through ONNX Runtime in length-sorted batches (``mmrag.encoders.onnx_runtime``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmrag.encoders.base import l2_normalise
from mmrag.rerankers import hf
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate


class BiEncoderReranker(Reranker):
    """Cosine of L2-normalised embeddings; passages truncated to ``max_words``."""

    name = "bi-encoder"

    def __init__(self, model: str | None = None, *, encoder: str | None = None, batch_size: int = 64,
                 max_words: int | None = 256, device: str | None = None, cache_docs: int = 50_000,
                 runtime: str = "onnx-int8", threads: int | None = None):
        from mmrag.encoders.onnx_runtime import check_runtime

        self.model_id = model
        self.encoder_name = encoder
        self.batch_size = batch_size
        self.max_words = max_words
        self.device = device
        self.runtime = check_runtime(runtime)
        self.threads = threads
        self._enc: Any = None
        self._onnx: Any = None
        self.doc_cache = hf.DocCache(cache_docs)  # passage vectors, reused across queries

    def _load(self) -> Any:
        if self._enc is not None:
            return self._enc
        if self.encoder_name:
            from mmrag.encoders import load

            opts = {"model": self.model_id} if self.model_id else {}
            self._enc = load(self.encoder_name, **opts)
            return self._enc
        from mmrag.bundled import minilm_path

        path = self.model_id or str(minilm_path())
        dev = hf.pick_device(self.device)

        def build() -> Any:
            from sentence_transformers import SentenceTransformer

            try:
                return SentenceTransformer(path, device=dev)
            except (OSError, ValueError) as e:
                from mmrag.errors import ModelNotFound

                raise ModelNotFound(f"could not load sentence-transformers model {path!r}: {e}") from None

        self._enc = hf.cached(("st", path, dev), build)
        return self._enc

    def _onnx_runtime(self) -> Any:
        """The ONNX path of the directly loaded model (``runtime``), or False for PyTorch."""
        if self._onnx is None:
            self._onnx = False
            if self.runtime != "torch" and hf.runs_on_cpu(self.device):
                from mmrag.bundled import cache_dir, minilm_path
                from mmrag.encoders.onnx_query import build_first, load_fast
                from mmrag.encoders.onnx_runtime import default_threads

                path = self.model_id or str(minilm_path())
                threads = self.threads or default_threads()
                self._onnx = (load_fast(path, cache_dir(), threads, self.runtime)
                              or build_first(self._load(), path, cache_dir(), threads, self.runtime) or False)
        return self._onnx

    def embed(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        """L2-normalised float32 embeddings."""
        if self.encoder_name:
            return np.asarray(self._load().encode_text(list(texts), is_query=is_query), dtype=np.float32)
        onnx = self._onnx_runtime()
        if onnx:
            return l2_normalise(onnx(list(texts)))
        return self._load().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        q = self.embed([query], is_query=True)[0]
        texts = [hf.truncate_words(c.text, self.max_words) for c in candidates]
        rows = self.doc_cache.get_many(texts, lambda missing: list(self.embed(missing, is_query=False)))
        p = np.stack(rows) if rows else np.zeros((0, q.shape[0]), dtype=np.float32)
        return (p @ q).astype(np.float64).tolist()
