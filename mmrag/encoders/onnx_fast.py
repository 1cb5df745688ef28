"""Start an exported sentence-transformers model without PyTorch.

Importing sentence-transformers (and with it torch and transformers) takes 6-20 s on 2 cores,
longer than encoding a few PDFs. Once a process with PyTorch has exported a model and checked
the export against it (``onnx_query.build``), it leaves a reference next to the export: PyTorch's
vectors for the probe texts and what the graph needs (pooling, token limit, lower-casing,
dimension). A later process finds that reference by the same cache key (model files and library
versions), tokenises with the ``tokenizers`` library alone, runs the graph on the probes and
compares them with PyTorch's stored vectors: the same check as before, without importing torch.
Anything missing or disagreeing returns None and the caller takes the PyTorch path.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrag.encoders import onnx_runtime
from mmrag.encoders.base import l2_normalise

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")


class FastTokenizer:
    """The ``tokenizers`` tokenizer behind a transformers call: ``tok(texts, truncation=True,
    max_length=n, padding=False)["input_ids"]`` and ``pad_token_id``."""

    def __init__(self, path: Path, max_length: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.enable_truncation(int(max_length))
        pad = (self._tok.padding or {}).get("pad_id") if self._tok.padding else None
        self.pad_token_id = pad if pad is not None else (self._tok.token_to_id("[PAD]") or 0)

    def __call__(self, texts: Sequence[str], truncation: bool = True, max_length: int | None = None,
                 padding: bool = False) -> dict[str, list[list[int]]]:
        if max_length:
            self._tok.enable_truncation(int(max_length))
        return {"input_ids": [e.ids for e in self._tok.encode_batch(list(texts))]}


def reference_path(graph: Path) -> Path:
    """``<key>.reference.json`` beside ``<key>.onnx`` and its int8 copy."""
    return graph.with_name(graph.name.split(".", 1)[0] + ".reference.json")


def write_reference(graph: Path, probes: Sequence[str], vectors: np.ndarray, pooling: str, max_length: int,
                    lower_case: bool) -> None:
    """PyTorch's (normalised) probe vectors and the graph's settings, written atomically."""
    record = {"probes": list(probes), "vectors": np.asarray(vectors, dtype=np.float64).tolist(),
              "pooling": pooling, "max_length": int(max_length), "lower_case": bool(lower_case),
              "dim": int(np.asarray(vectors).shape[1])}
    onnx_runtime.atomic_write(reference_path(graph), lambda tmp: tmp.write_text(json.dumps(record)))


def reference_matches(graph: Path, vectors: np.ndarray) -> bool:
    """True when ``graph``'s stored reference holds these PyTorch probe vectors."""
    try:
        stored = np.asarray(json.loads(reference_path(graph).read_text())["vectors"])
    except (OSError, ValueError, KeyError):
        return False
    return stored.shape == np.shape(vectors) and bool(np.allclose(stored, vectors, atol=1e-5))


def find(model_dir: str | Path, cache: Path, runtime: str) -> tuple[Path, dict] | None:
    """(graph for ``runtime``, its reference record) when both exist for this model, else None."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir() or not (model_dir / "tokenizer.json").is_file():
        return None
    for pooling in POOLINGS:
        fp32, int8 = onnx_runtime.graph_paths(cache, model_dir, f"st-{pooling}")
        graph = fp32 if runtime == "onnx" else int8
        ref_file = reference_path(fp32)
        if graph.is_file() and ref_file.is_file():
            try:
                return graph, json.loads(ref_file.read_text())
            except (OSError, ValueError):
                return None
    return None


def load(model_dir: str | Path, cache: Path, threads: int, runtime: str, floor: float,
         max_length: int | None = None) -> Any:
    """An ``OnnxPooledEncoder`` for ``runtime`` built without PyTorch, or None (no export or no
    reference yet, no tokenizer.json, or probe vectors below ``floor`` cosine to PyTorch's)."""
    from mmrag.encoders.onnx_query import OnnxPooledEncoder

    found = find(model_dir, cache, runtime) if onnx_runtime.installed() else None
    if found is None:
        return None
    graph, ref = found
    try:
        limit = int(max_length or ref["max_length"])
        enc = OnnxPooledEncoder(graph, FastTokenizer(Path(model_dir) / "tokenizer.json", limit), limit, threads,
                                lower_case=bool(ref["lower_case"]))
        got = l2_normalise(enc(ref["probes"]))
        cosine = float(np.min(np.sum(got * np.asarray(ref["vectors"], dtype=np.float32), axis=1)))
    except Exception as e:  # a damaged reference or graph: the PyTorch path rebuilds both
        log.info("ONNX %s start without PyTorch failed for %s (%s)", runtime, Path(model_dir).name, e)
        return None
    if cosine < floor:
        log.warning("ONNX %s graph of %s disagrees with its PyTorch reference (cosine %.6f < %g)",
                    runtime, Path(model_dir).name, cosine, floor)
        return None
    enc.dim = int(ref["dim"])
    return enc
