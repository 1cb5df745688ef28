"""Dense vector segments: FAISS flat (default), HNSW or IVF-PQ; the GPU when faiss-gpu finds one.

A segment is an immutable folder holding the ids (ascending), the float32 vectors and, for
HNSW/IVF-PQ, the trained FAISS file (written with faiss.write_index: no pickle). Flat segments
rebuild their FAISS index from the vectors at load, which is a copy, not a computation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from mmrag.config import IndexConfig
from mmrag.errors import ConfigError, MissingDependency
from mmrag.indexes.layout import new_tmp_dir, publish_dir

log = logging.getLogger(__name__)

IVF_MIN_POINTS_PER_LIST = 39  # FAISS's own guidance for k-means training
IVF_MIN_VECTORS = 10_000  # below this a flat scan is faster and exact
AUTO_HNSW_MIN_VECTORS = 20_000  # "auto": exact flat scans below this, HNSW graphs from here on


def _faiss():
    import faiss

    return faiss


def build_segment(parent: Path, name: str, field: str, ids: np.ndarray, vectors: np.ndarray,
                  cfg: IndexConfig) -> tuple[Path, str]:
    """Write one dense segment atomically; returns (folder, the FAISS kind actually used)."""
    order = np.argsort(ids, kind="stable")
    ids = np.ascontiguousarray(ids[order], dtype=np.int64)
    vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
    kind = segment_kind(cfg.dense, len(ids))
    tmp = new_tmp_dir(parent, name)
    np.save(tmp / "ids.npy", ids, allow_pickle=False)
    np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
    if kind != "flat":
        index = _make_index(kind, vectors.shape[1], len(ids), cfg)
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        _faiss().write_index(index, str(tmp / "faiss.index"))
    (tmp / "meta.json").write_text(json.dumps({"field": field, "kind": kind, "dim": int(vectors.shape[1]),
                                               "count": int(len(ids))}))
    return publish_dir(tmp, parent / name), kind


def segment_kind(dense: str, n: int) -> str:
    """The FAISS kind one segment of ``n`` vectors gets under ``index.dense``.

    ``auto`` scans small segments exactly and gives large ones an HNSW graph: a flat scan of
    100k 384-d vectors reads 150 MB per query (about 15 ms here), a graph a few hundred rows.
    Candidates are rescored exactly afterwards, so the graph only decides who is considered.
    """
    if dense == "auto":
        return "hnsw" if n >= AUTO_HNSW_MIN_VECTORS else "flat"
    if dense == "ivfpq" and n < IVF_MIN_VECTORS:
        return "flat"
    return dense


def _make_index(kind: str, dim: int, n: int, cfg: IndexConfig):
    faiss = _faiss()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, 2 * cfg.hnsw_m)
        return index
    if kind == "ivfpq":
        if dim % cfg.pq_m:
            raise ConfigError(f"index.pq_m={cfg.pq_m} must divide the vector dimension {dim}")
        nlist = max(1, min(cfg.ivf_nlist, n // IVF_MIN_POINTS_PER_LIST))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        return index
    return faiss.IndexFlatIP(dim)


def to_device(index, device: str):
    """Move a CPU index to the GPU when asked (``gpu``) or when one exists (``auto``)."""
    if device == "cpu":
        return index
    faiss = _faiss()
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus == 0 or not hasattr(faiss, "StandardGpuResources"):
        if device == "gpu":
            raise MissingDependency("index.device: gpu needs faiss-gpu and a CUDA GPU: "
                                    "pip install 'mmrag[gpu]', or set index.device to cpu or auto")
        return index
    res = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(res, 0, index)
    gpu_index.resources_ref = res
    return gpu_index


def _stored_vectors(index) -> np.ndarray | None:
    """The float32 vectors a flat or HNSW index holds, as a NumPy view (None for IVF-PQ).

    Exact rescoring reads these rows instead of the memory-mapped vectors.npy: one copy of the
    vectors in memory and in the CPU caches instead of two. The view lives as long as ``index``.
    """
    faiss = _faiss()
    if isinstance(index, faiss.IndexHNSW):
        index = faiss.downcast_index(index.storage)
    if not isinstance(index, faiss.IndexFlat) or index.ntotal == 0:
        return None
    return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).view(np.float32).reshape(index.ntotal, index.d)


class DenseSegment:
    """A loaded segment: search the FAISS index, or score given ids exactly from the vectors."""

    def __init__(self, path: Path, cfg: IndexConfig):
        self.path = path
        self.meta = json.loads((path / "meta.json").read_text())
        self.kind = self.meta["kind"]
        self.ids = np.load(path / "ids.npy", allow_pickle=False)
        self.vectors = np.load(path / "vectors.npy", allow_pickle=False, mmap_mode="r")
        faiss = _faiss()
        if self.kind == "flat":
            index = faiss.IndexFlatIP(int(self.meta["dim"]))
            if len(self.ids):
                index.add(np.ascontiguousarray(self.vectors))
        else:
            index = faiss.read_index(str(path / "faiss.index"))
            if self.kind == "hnsw":
                index.hnsw.efSearch = cfg.hnsw_ef_search
            elif self.kind == "ivfpq":
                index.nprobe = cfg.ivf_nprobe
        self.index = to_device(index, cfg.device)
        if self.index is index:  # on the CPU: rescore from FAISS's own copy, not a second one
            stored = _stored_vectors(index)
            if stored is not None and len(stored) == len(self.ids):
                self.vectors = stored

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.ids))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, rows = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        keep = rows[0] >= 0
        return self.ids[rows[0][keep]], scores[0][keep]

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found mask) of ``ids`` in this segment."""
        if not len(self.ids):
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        rows = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return rows, self.ids[rows] == ids

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[rows], dtype=np.float32)
