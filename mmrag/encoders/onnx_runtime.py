"""ONNX Runtime for the bundled encoders: export once, quantise to int8, cache, batch by length.

``runtime`` picks how an encoder runs its batches: ``onnx-int8`` (the graph exported from the
PyTorch model, then dynamically quantised: int8 weights per output channel, activations
quantised on the fly), ``onnx`` (the same graph in float32) or ``torch`` (the model as loaded).
Exports live under ``<cache>/onnx/<key>[.q3.int8].onnx``, keyed by the model files, the export kind
and the library versions, written atomically so concurrent processes share them. Whoever builds
a session checks it against PyTorch on probe texts and falls back (int8 -> float32 ONNX ->
PyTorch, with a log line) when it disagrees.

Batches are cut by length: texts are tokenised without padding, sorted by token count and
grouped so that rows x longest row stays under a token budget; each batch is padded only to its
own longest row and the results are put back in input order.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmrag.errors import ConfigError

log = logging.getLogger(__name__)

RUNTIMES = ("onnx-int8", "onnx", "torch")
QUANT_RECIPE = "q3"  # names the int8 file: a new recipe never reads an old quantisation
# Padded tokens per batch. Small batches keep a layer's activations in the core's L2 cache: 100
# DL19 passages (8,100 tokens) through int8 MiniLM took 825 ms in batches of up to 8,192 tokens
# and 406 ms in batches of 512 on 2 idle cores (256: 607 ms, the per-run overhead shows).
MAX_BATCH_TOKENS = 512


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of RUNTIMES, else a ConfigError that lists them."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    return runtime


def fallbacks(runtime: str) -> list[str]:
    """The ONNX runtimes to try, best first, before PyTorch answers."""
    return {"onnx-int8": ["onnx-int8", "onnx"], "onnx": ["onnx"], "torch": []}[check_runtime(runtime)]


def installed() -> bool:
    """True when onnx (the exporter needs it) and onnxruntime import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """Intra-op threads for batch work: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cache_key(model_dir: Path, tag: str) -> str:
    """Hash of the model files (names, sizes, mtimes), the export kind and the library versions."""
    from importlib.metadata import PackageNotFoundError, version

    def installed_version(pkg: str) -> str:  # read from the package metadata: importing torch takes seconds
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "-"

    h = hashlib.sha256(f"{tag}|{installed_version('torch')}|{installed_version('onnxruntime')}|v2".encode())
    for f in sorted(Path(model_dir).rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt"):
            st = f.stat()
            h.update(f"{f.relative_to(model_dir)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def eager_attention(model: Any) -> Any:
    """A copy of ``model`` with plain (eager) attention for export: the SDPA export masks with
    Where/IsNaN nodes that took 16% of an int8 MiniLM run."""
    import copy

    clone = copy.deepcopy(model).eval()
    if hasattr(clone, "set_attn_implementation"):
        try:
            clone.set_attn_implementation("eager")
        except (ValueError, ImportError):  # a model without an eager path exports as it is
            pass
    return clone


def atomic_write(dest: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename onto ``dest``: a concurrent process sees the whole file or none."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def quantize(src: Path, dest: Path, tokenizer_json: Path | None = None) -> None:
    """Dynamic int8 quantisation of the MatMuls with a weight matrix (per output channel).

    Per-tensor weights move MiniLM's passage vectors to cosine 0.91 of PyTorch's; per channel
    keeps them above 0.99. The feed-forward down projection reads the GELU output, whose outlier
    channels one activation scale per batch serves badly (0.0074 nDCG@10 lost on NovelEval), so
    those channels are first scaled into the weights (``onnx_smooth``), calibrated on
    ``calibration_texts`` through the model's ``tokenizer_json``. Without a tokenizer file the
    down projections stay float32. MatMuls of two activations (attention scores) stay float32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mmrag.encoders import onnx_smooth

    model = onnx.load(str(src))
    weights = {i.name for i in model.graph.initializer}
    skip = [n.name for n in model.graph.node if n.op_type == "MatMul" and not weights.intersection(n.input)]
    if tokenizer_json is not None and Path(tokenizer_json).is_file():
        onnx_smooth.smooth(model, Path(tokenizer_json))
    else:
        skip += [n.name for n in onnx_smooth.contracting_matmuls(model)]

    def write(tmp: Path) -> None:
        smoothed = tmp.with_name(tmp.name + ".fp32.onnx")
        onnx.save(model, str(smoothed))
        logging.disable(logging.WARNING)  # the quantiser logs a line per tensor and advice on the root logger
        try:
            quantize_dynamic(str(smoothed), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], nodes_to_exclude=skip,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            logging.disable(logging.NOTSET)
            smoothed.unlink(missing_ok=True)

    atomic_write(dest, write)


def graph_paths(cache: Path, model_dir: Path, tag: str) -> tuple[Path, Path]:
    """Where the float32 export of ``model_dir`` and its int8 copy live (whether or not they exist)."""
    key = cache_key(model_dir, tag)
    fp32 = cache / "onnx" / f"{key}.onnx"
    return fp32, fp32.with_name(f"{key}.{QUANT_RECIPE}.int8.onnx")


def exported(cache: Path, model_dir: Path, tag: str, export: Callable[[Path], None], runtime: str) -> Path:
    """Path of the cached graph for ``runtime`` (exporting and quantising on first use only)."""
    fp32, q = graph_paths(cache, model_dir, tag)
    if not fp32.exists():
        log.info("exporting %s (%s) to ONNX: once per model and library versions", model_dir, tag)
        atomic_write(fp32, export)
    if runtime != "onnx-int8":
        return fp32
    if not q.exists():
        quantize(fp32, q, Path(model_dir) / "tokenizer.json")
    return q


def session(path: Path, threads: int) -> Any:
    """A CPU InferenceSession with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Worker threads that spin while waiting burn the cores other processes (ingest workers, other
    # users) need; on a shared machine that costs far more than the wake-up latency it saves.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class BatchRunner:
    """Runs the batches of one call ``threads`` at a time, each on one intra-op thread.

    The batches are small (``MAX_BATCH_TOKENS``), and one batch split over two cores waits on
    its slowest part at every operator: on 2 cores, 60 DL19 passages through int8 MiniLM took
    250 ms as 11 batches in turn on 2 threads and 197 ms as two batches at a time on one thread
    each (SPLADE-tiny, 100 passages: 39 -> 28 ms). ONNX Runtime releases the GIL while it runs,
    and one session may run from several threads. A call with a single batch runs on one core.
    """

    def __init__(self, path: Path, threads: int):
        self.threads = max(1, int(threads))
        self.session = session(path, 1 if self.threads > 1 else self.threads)
        self._pool: Any = None

    def input_names(self) -> set[str]:
        return {i.name for i in self.session.get_inputs()}

    def run(self, feeds: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """The first output of the graph for each feed, in order."""
        if self.threads == 1 or len(feeds) < 2:
            return [self.session.run(None, f)[0] for f in feeds]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mmrag-onnx")
        return list(self._pool.map(lambda f: self.session.run(None, f)[0], feeds))


def token_batches(lengths: Sequence[int], max_tokens: int = MAX_BATCH_TOKENS) -> list[np.ndarray]:
    """Indices grouped by length: sorted shortest first, a batch closes when one more row would
    make rows x longest exceed ``max_tokens`` (a single longer row still gets its own batch)."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or (end + 1 - start) * lengths[order[end]] > max_tokens:
            batches.append(order[start:end])
            start = end
    return batches


class TokenFeed:
    """Tokenises texts once without padding and yields padded ONNX feeds batch by batch."""

    def __init__(self, tokenizer: Any, max_length: int, inputs: set[str], lower_case: bool = False,
                 max_tokens: int = MAX_BATCH_TOKENS):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.inputs = inputs
        self.lower_case = lower_case
        self.max_tokens = max_tokens

    def batches(self, texts: Sequence[str]) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(row indices into ``texts``, feed) per batch, shortest batch first."""
        texts = [t.lower() for t in texts] if self.lower_case else list(texts)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)["input_ids"]
        out = []
        for idx in token_batches([len(r) for r in ids], self.max_tokens):
            width = max(len(ids[i]) for i in idx)
            tok = np.zeros((len(idx), width), dtype=np.int64)
            if self.tokenizer.pad_token_id:
                tok.fill(self.tokenizer.pad_token_id)
            mask = np.zeros_like(tok)
            for r, i in enumerate(idx):
                tok[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            feed = {"input_ids": tok, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(tok)
            out.append((idx, {k: v for k, v in feed.items() if k in self.inputs}))
        return out
