"""SPLADE through ONNX Runtime: the transformer (and the MLM head's transform) in the graph, the
vocabulary projection in NumPy, and for passages only over the query's terms.

A passage's score is ``sum over the query's terms v of q[v] * log1p(relu(max_t(h_t . W[v] + b[v])))``
with ``h_t`` the head-transformed hidden state of token ``t`` and ``W``, ``b`` the output
projection. The query has a few dozen terms, so projecting a passage's tokens onto those columns
instead of all 30,522 gives the same scores at a tiny fraction of the cost (the full projection is
most of SPLADE-tiny's work). Passages are represented by their ``h_t`` rows (float16).

A process that checked an export against PyTorch leaves beside it the projection and PyTorch's
term weights for the probe texts (``write_reference``), so later processes start without
importing torch (``load_fast``), as ``onnx_fast`` does for sentence-transformers models.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrag.encoders import onnx_runtime

log = logging.getLogger(__name__)

PROBES = ("what is the capital of France?", "Quarterly revenue grew by 12 percent in 2019 compared with 2018.",
          "The mitochondrion is the organelle that produces most of the chemical energy needed to power the "
          "cell's biochemical reactions; it stores that energy in adenosine triphosphate (ATP).")
# Cosine of each probe's term-weight vector to PyTorch's: float32 must match; int8 keeps
# SPLADE-tiny's probes at 0.999 (a projection with its rows shuffled gives 0).
MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.99}
CHUNK_TOKENS = 1024  # token rows projected onto the whole vocabulary at once (4 MB per 32 rows)


def _projection(lm: Any) -> tuple[Any, str] | None:
    """(output projection Linear, its module path) of a masked LM, or None when it has none."""
    import torch

    out = lm.get_output_embeddings()
    if not isinstance(out, torch.nn.Linear):
        return None
    for name, mod in lm.named_modules():
        if mod is out:
            return out, name
    return None


def _export(lm: Any, proj_name: str, tokenizer: Any, dest: Path) -> None:
    """The masked LM with its output projection replaced by identity: (batch, tokens, hidden)."""
    import torch

    body = onnx_runtime.eager_attention(lm)
    parent, _, leaf = proj_name.rpartition(".")
    setattr(body.get_submodule(parent) if parent else body, leaf, torch.nn.Identity())

    class Hidden(torch.nn.Module):
        def __init__(self, m: Any):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ex = tokenizer([PROBES[0]], return_tensors="pt")
    args = (ex["input_ids"], ex["attention_mask"], ex.get("token_type_ids", torch.zeros_like(ex["input_ids"])))
    dynamic = {n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids", "hidden")}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(body.float()), args, str(dest), input_names=list(dynamic)[:3],
                          output_names=["hidden"], dynamic_axes=dynamic, opset_version=17, dynamo=False)


class OnnxSplade:
    """Token states from ONNX Runtime, term weights and passage scores from them in NumPy."""

    def __init__(self, path: Path, tokenizer: Any, max_length: int, weight: np.ndarray, bias: np.ndarray,
                 threads: int):
        self._runner = onnx_runtime.BatchRunner(path, threads)
        self._feed = onnx_runtime.TokenFeed(tokenizer, max_length, self._runner.input_names())
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)  # (vocab, hidden)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.path = path

    def states(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, the ``(tokens, hidden)`` head states of its attended tokens, float16."""
        out: list[Any] = [None] * len(texts)
        batches = self._feed.batches(texts)
        for (idx, feed), h in zip(batches, self._runner.run([feed for _, feed in batches])):
            lens = feed["attention_mask"].sum(1)
            for r, i in enumerate(idx):
                out[i] = h[r, :lens[r]].astype(np.float16)
        return out

    def weights(self, states: Sequence[np.ndarray]) -> np.ndarray:
        """Dense ``(n, vocab)`` SPLADE term weights from token states."""
        out = np.zeros((len(states), self.weight.shape[0]), dtype=np.float32)
        for i, h in enumerate(states):
            peak = np.full(self.weight.shape[0], -np.inf, dtype=np.float32)
            for s in range(0, len(h), CHUNK_TOKENS):
                logits = h[s:s + CHUNK_TOKENS].astype(np.float32) @ self.weight.T
                np.maximum(peak, logits.max(axis=0), out=peak)
            out[i] = np.log1p(np.maximum(peak + self.bias, 0.0))
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Dense ``(n, vocab)`` term weights, as ``SpladeReranker.encode`` returns them."""
        return self.weights(self.states(texts))

    def scores(self, query: np.ndarray, states: Sequence[np.ndarray]) -> np.ndarray:
        """Dot product of the query's term weights with each passage's, over the query's terms only."""
        terms = np.flatnonzero(query)
        if not len(states):
            return np.zeros(0)
        if not len(terms):
            return np.zeros(len(states))
        rows = np.concatenate(states).astype(np.float32) @ self.weight[terms].T  # (all tokens, terms)
        starts = np.cumsum([0] + [len(h) for h in states[:-1]])
        peak = np.maximum.reduceat(rows, starts, axis=0) + self.bias[terms]
        return (np.log1p(np.maximum(peak, 0.0)) @ query[terms]).astype(np.float64)


def build(lm: Any, tokenizer: Any, model_dir: str | Path, max_length: int, cache: Path, threads: int,
          runtime: str, reference: Any) -> OnnxSplade | None:
    """The ONNX SPLADE for ``runtime`` (onnx or onnx-int8), exported on first use, or None (logged)
    when it cannot run or its probe term weights disagree with ``reference(texts)`` (PyTorch)."""
    model_dir = Path(model_dir)
    found = _projection(lm)
    if found is None or not model_dir.is_dir() or not onnx_runtime.installed():
        log.info("SPLADE model %s stays on PyTorch (no local folder, no output projection or no onnxruntime)",
                 model_dir.name)
        return None
    proj, name = found
    try:
        path = onnx_runtime.exported(cache, model_dir, "splade-states", lambda p: _export(lm, name, tokenizer, p),
                                     runtime)
        bias = proj.bias if proj.bias is not None else np.zeros(proj.weight.shape[0])
        enc = OnnxSplade(path, tokenizer, max_length, proj.weight.detach().float().cpu().numpy(),
                         np.asarray(bias.detach().float().cpu().numpy() if hasattr(bias, "detach") else bias),
                         threads)
        got, ref = enc.encode(list(PROBES)), reference(list(PROBES))
        cosine = _cosine(got, ref)
    except Exception as e:  # any exporter/runtime failure: PyTorch still answers
        log.warning("ONNX %s path unavailable for SPLADE %s (%s)", runtime, model_dir.name, e)
        return None
    if not _agrees(cosine, runtime, model_dir.name, "PyTorch"):
        return None
    if (model_dir / "tokenizer.json").is_file():
        write_reference(path, enc, ref, max_length)
    return enc


def _agrees(cosine: float, runtime: str, name: str, against: str) -> bool:
    """Whether the probe ``cosine`` keeps ``runtime``'s floor; a log line when it does not."""
    if cosine >= MIN_COSINE[runtime]:
        return True
    log.warning("ONNX %s SPLADE %s disagrees with %s (probe cosine %.5f < %g): not used",
                runtime, name, against, cosine, MIN_COSINE[runtime])
    return False


def _cosine(got: np.ndarray, ref: np.ndarray) -> float:
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1)
    return float(np.min(np.sum(got * ref, axis=1) / np.maximum(norms, 1e-12)))


def _reference_files(graph: Path) -> tuple[Path, Path]:
    """The reference record (named as ``onnx_fast`` names it) and the projection beside it."""
    from mmrag.encoders.onnx_fast import reference_path

    meta = reference_path(graph)
    return meta, meta.with_name(meta.name.replace(".reference.json", ".projection.npz"))


def write_reference(graph: Path, enc: OnnxSplade, ref: np.ndarray, max_length: int) -> None:
    """The output projection and PyTorch's probe term weights (sparse), unless already there."""
    meta, proj = _reference_files(graph)
    if meta.is_file() and proj.is_file():
        return
    onnx_runtime.atomic_write(proj, lambda tmp: np.savez(open(tmp, "wb"), weight=enc.weight, bias=enc.bias))
    rows = [{"terms": np.flatnonzero(r).tolist(), "weights": r[np.flatnonzero(r)].astype(float).tolist()} for r in ref]
    record = {"probes": list(PROBES), "rows": rows, "vocab": int(ref.shape[1]), "max_length": int(max_length)}
    onnx_runtime.atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(record)))


def load_fast(model_dir: str | Path, max_length: int, cache: Path, threads: int, runtime: str) -> OnnxSplade | None:
    """The ONNX SPLADE for ``runtime`` started without PyTorch from a checked export's reference,
    or None (nothing cached yet, or the graph disagrees with PyTorch's stored term weights)."""
    from mmrag.encoders.onnx_fast import FastTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "tokenizer.json").is_file() or not onnx_runtime.installed():
        return None
    fp32, int8 = onnx_runtime.graph_paths(cache, model_dir, "splade-states")
    graph = fp32 if runtime == "onnx" else int8
    meta, proj = _reference_files(fp32)
    if not (graph.is_file() and meta.is_file() and proj.is_file()):
        return None
    try:
        record = json.loads(meta.read_text())
        with np.load(proj) as z:
            weight, bias = z["weight"], z["bias"]
        enc = OnnxSplade(graph, FastTokenizer(model_dir / "tokenizer.json", max_length), max_length, weight, bias,
                         threads)
        ref = np.zeros((len(record["rows"]), int(record["vocab"])), dtype=np.float32)
        for i, row in enumerate(record["rows"]):
            ref[i, row["terms"]] = row["weights"]
        cosine = _cosine(enc.encode(record["probes"]), ref)
    except Exception as e:  # a damaged reference or graph: the PyTorch path checks again
        log.info("ONNX %s SPLADE start without PyTorch failed for %s (%s)", runtime, model_dir.name, e)
        return None
    return enc if _agrees(cosine, runtime, model_dir.name, "its stored PyTorch reference") else None
