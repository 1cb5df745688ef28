"""Sentence-transformers models through ONNX Runtime: the same weights as the PyTorch model, exported once.

Encoding one short query is dominated by per-operator overhead in PyTorch eager mode; ONNX
Runtime runs the same graph with fused kernels (MiniLM-L6 on one CPU thread here: 8 ms instead of
18 ms). Batches of passages run the same graph, or its int8-quantised copy, cut into
length-sorted batches (see ``onnx_runtime``). Only sentence-transformers models of the plain
shape "transformer, then mean or CLS pooling (then normalise)" are exported; anything else keeps
the PyTorch path. An export is checked against PyTorch on probe texts before it is used, and
cached under ``<cache>/onnx/``, keyed by the model files and the library versions.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrag.encoders import onnx_fast, onnx_runtime
from mmrag.encoders.base import l2_normalise

log = logging.getLogger(__name__)

PROBES = ("what is the capital of France?", "Quarterly revenue grew by 12 percent in 2019 compared with 2018.",
          "The mitochondrion is the organelle that produces most of the chemical energy needed to power the "
          "cell's biochemical reactions; it stores that energy in adenosine triphosphate (ATP), and cells "
          "with high energy demands, such as muscle and nerve cells, hold many of them.")
MIN_COSINE = 0.99999  # a float32 export that moves any probe vector further than this is not used
# int8 (onnx_runtime.quantize) moves MiniLM's probe vectors to cosine 0.995-0.997 of PyTorch's (DL19
# passages: min 0.996, mean 0.998); per-tensor weights (a worse quantisation) give 0.91, an export
# of the wrong pooling far less.
MIN_COSINE_INT8 = 0.98


def _plain_pooling(st_model: Any) -> str | None:
    """'mean' or 'cls' when the model is transformer + pooling (+ normalize), else None."""
    kinds = [type(m).__name__ for m in st_model]
    if len(kinds) < 2 or kinds[0] != "Transformer" or kinds[1] != "Pooling":
        return None
    if any(k != "Normalize" for k in kinds[2:]):
        return None
    pool = st_model[1]
    if getattr(pool, "include_prompt", True) is False:  # prompt tokens left out of the mean
        return None
    mode = getattr(pool, "pooling_mode", None)
    if mode is None and hasattr(pool, "get_pooling_mode_str"):  # sentence-transformers < 6
        mode = pool.get_pooling_mode_str()
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if len(mode) == 1 else None
    return mode if mode in ("mean", "cls") else None


def _export(st_model: Any, pooling: str, dest: Path) -> None:
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, body: Any):
            super().__init__()
            self.body = body

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.body(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            if pooling == "cls":
                return h[:, 0]
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    body = onnx_runtime.eager_attention(st_model[0].auto_model)
    ex = st_model.tokenizer([PROBES[0]], return_tensors="pt")
    args = (ex["input_ids"], ex["attention_mask"], ex.get("token_type_ids", torch.zeros_like(ex["input_ids"])))
    dynamic = {n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    dynamic["vector"] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(body), args, str(dest), input_names=list(dynamic)[:3],
                          output_names=["vector"], dynamic_axes=dynamic, opset_version=17, dynamo=False)


class OnnxPooledEncoder:
    """Pooled (not yet normalised) vectors from an exported ONNX graph, batched by length."""

    def __init__(self, path: Path, tokenizer: Any, max_length: int, threads: int = 1, lower_case: bool = False):
        self._runner = onnx_runtime.BatchRunner(path, threads)
        self._feed = onnx_runtime.TokenFeed(tokenizer, max_length, self._runner.input_names(), lower_case=lower_case)
        self.path = path
        self.int8 = path.name.endswith(".int8.onnx")

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        batches = self._feed.batches(texts)
        out: np.ndarray | None = None
        for (idx, _), vec in zip(batches, self._runner.run([feed for _, feed in batches])):
            if out is None:
                out = np.zeros((len(texts), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def build(st_model: Any, model_dir: str | Path, cache: Path, threads: int = 1,
          runtime: str = "onnx") -> OnnxPooledEncoder | None:
    """The ONNX path for ``st_model`` (``runtime`` onnx or onnx-int8), exporting it on first use;
    None where it cannot be used (packages missing, model shape not plain, export failing or
    disagreeing with PyTorch: each says why in the log)."""
    pooling = _plain_pooling(st_model)
    model_dir = Path(model_dir)
    if pooling is None or not model_dir.is_dir():
        return None
    if not onnx_runtime.installed():
        log.info("onnx/onnxruntime not installed: %s is encoded with PyTorch", model_dir.name)
        return None
    try:
        path = onnx_runtime.exported(cache, model_dir, f"st-{pooling}", lambda p: _export(st_model, pooling, p),
                                     runtime)
        enc = OnnxPooledEncoder(path, st_model.tokenizer, st_model.max_seq_length, threads,
                                lower_case=bool(getattr(st_model[0], "do_lower_case", False)))
        probe = enc(list(PROBES))
        ref = st_model.encode(list(PROBES), convert_to_numpy=True, normalize_embeddings=True,
                              show_progress_bar=False)
        cosine = float(np.min(np.sum(l2_normalise(probe) * ref, axis=1)))
    except Exception as e:  # any exporter/runtime failure: PyTorch still answers
        log.warning("ONNX %s path unavailable for %s (%s)", runtime, model_dir.name, e)
        return None
    least = floor(runtime)
    if cosine < least:
        log.warning("ONNX %s export of %s disagrees with PyTorch (probe cosine %.6f < %g): not used",
                    runtime, model_dir.name, cosine, least)
        return None
    if not onnx_fast.reference_matches(path, ref):  # later processes start without PyTorch
        onnx_fast.write_reference(path, PROBES, ref, pooling, st_model.max_seq_length,
                                  bool(getattr(st_model[0], "do_lower_case", False)))
    return enc


def floor(runtime: str) -> float:
    """The least probe cosine to PyTorch that ``runtime`` must keep."""
    return MIN_COSINE_INT8 if runtime == "onnx-int8" else MIN_COSINE


def load_fast(model_dir: str | Path, cache: Path, threads: int, runtime: str, max_length: int | None = None) -> Any:
    """The ONNX path for ``runtime`` started without PyTorch (``onnx_fast``), or None: then
    ``build_first`` (with PyTorch) exports, checks, falls back and leaves the reference."""
    if runtime == "torch":
        return None
    return onnx_fast.load(model_dir, cache, threads, runtime, floor(runtime), max_length)


def build_first(st_model: Any, model_dir: str | Path, cache: Path, threads: int, runtime: str) -> OnnxPooledEncoder | None:
    """The best ONNX path ``runtime`` allows (int8, then float32), or None for PyTorch."""
    for rt in onnx_runtime.fallbacks(runtime):
        enc = build(st_model, model_dir, cache, threads, rt)
        if enc is not None:
            return enc
        if rt != "onnx":
            log.warning("falling back from %s for %s", rt, Path(model_dir).name)
    if runtime != "torch":
        log.info("%s is encoded with PyTorch", Path(model_dir).name)
    return None
