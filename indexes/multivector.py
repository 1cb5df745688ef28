"""Late-interaction (ColPali/ColQwen2-style) multi-vector store: MaxSim search over memory-mapped shards.

Each ``add`` becomes one immutable shard: a ``(tokens, dim)`` matrix of all its items' token
vectors stacked, stored as a raw ``.npy`` (float16 by default) and opened with ``mmap_mode="r"``
after a save or load, so search streams the tokens from disk instead of holding them in RAM.
A small table (``items.npy``: id, shard, start, length) says where each item's tokens are.
``save`` writes only new shards (existing ones are hard-linked, or copied across file systems)
into a temporary folder that then replaces the target, so a reader never sees half a store.
Deletes are tombstones; a save compacts a shard once most of its tokens are dead.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from mmrag.errors import IndexCorrupt, IndexMismatch, IndexNotFound, MissingDependency, QueryError

FORMAT = "mmrag-multivector"
FORMAT_VERSION = 1
_DTYPES = ("float16", "float32")
_BLOCK_TOKENS = 65536  # tokens scored per matrix product: bounds the (query tokens x block) buffer


def pool_tokens(matrix: np.ndarray, pool_factor: int) -> np.ndarray:
    """Mean-pool similar token vectors (Ward clustering on cosine geometry) to ~len/pool_factor rows."""
    n = matrix.shape[0]
    if pool_factor <= 1 or n <= 2:
        return matrix
    try:
        from scipy.cluster.hierarchy import fcluster, linkage
    except ImportError:
        raise MissingDependency("token pooling needs scipy: pip install 'mmrag[vlm]' (or pip install scipy)") from None

    clusters = max(1, n // pool_factor)
    x = matrix.astype(np.float32)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = fcluster(linkage(unit, method="ward"), t=clusters, criterion="maxclust")
    return np.stack([x[labels == c].mean(axis=0) for c in np.unique(labels)])


class _Shard:
    """One stored ``(tokens, dim)`` matrix: a memmap once saved, an in-RAM array before that."""

    def __init__(self, name: str, data: np.ndarray, path: Path | None = None):
        self.name = name
        self.data = data
        self.path = path  # file it is stored in (None until first save)


class MultiVectorStore:
    """Multi-vector items (one ``(tokens, dim)`` matrix each) with batched MaxSim search."""

    def __init__(self, dim: int, dtype: str = "float16", pool_factor: int = 1):
        if dtype not in _DTYPES:
            raise IndexMismatch(f"multi-vector dtype must be one of {_DTYPES}, got {dtype!r}")
        if dim <= 0:
            raise IndexMismatch(f"multi-vector dim must be positive, got {dim}")
        self.dim = int(dim)
        self.dtype = dtype
        self.pool_factor = int(pool_factor)
        self._shards: dict[str, _Shard] = {}
        # id -> (shard name, start row, token count); insertion-ordered
        self._items: dict[int, tuple[str, int, int]] = {}

    # ------------------------------------------------------------------ contents
    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self._items

    @property
    def ids(self) -> np.ndarray:
        return np.fromiter(self._items, dtype=np.int64, count=len(self._items))

    def get(self, item_id: int) -> np.ndarray:
        """The stored (possibly pooled, float16) token matrix of one item, as float32."""
        try:
            shard, start, length = self._items[int(item_id)]
        except KeyError:
            raise KeyError(f"no item {item_id} in the multi-vector store") from None
        return np.asarray(self._shards[shard].data[start:start + length], dtype=np.float32)

    def add(self, ids: list[int], matrices: list[np.ndarray]) -> None:
        """Store one matrix per id; an id already present is replaced."""
        if len(ids) != len(matrices):
            raise ValueError(f"add: {len(ids)} ids but {len(matrices)} matrices")
        if not ids:
            return
        rows: list[np.ndarray] = []
        placed: list[tuple[int, int, int]] = []
        start = 0
        for item_id, m in zip(ids, matrices):
            m = np.asarray(m, dtype=np.float32)
            if m.ndim != 2 or m.shape[1] != self.dim or m.shape[0] == 0:
                raise IndexMismatch(
                    f"item {item_id}: expected a (tokens, {self.dim}) matrix, got shape {m.shape}")
            m = pool_tokens(m, self.pool_factor)
            rows.append(m.astype(self.dtype))
            placed.append((int(item_id), start, m.shape[0]))
            start += m.shape[0]
        name = f"shard-{uuid.uuid4().hex[:12]}"
        self._shards[name] = _Shard(name, np.concatenate(rows))
        for item_id, s, n in placed:
            self._items.pop(item_id, None)
            self._items[item_id] = (name, s, n)

    def delete(self, ids) -> int:
        """Forget these ids (missing ids are ignored); returns how many were removed."""
        removed = 0
        for item_id in np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).ravel():
            if self._items.pop(int(item_id), None) is not None:
                removed += 1
        return removed

    # ------------------------------------------------------------------ search
    def scores(self, query: np.ndarray, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim of ``query`` against ``ids`` (all items if None): (ids, scores) in store order."""
        q = np.asarray(query, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        elif q.ndim == 3 and q.shape[0] == 1:  # a one-item batch, as encode_query returns it
            q = q[0]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise QueryError(f"query must be a (tokens, {self.dim}) matrix, got shape {q.shape}")
        if ids is None:
            wanted = list(self._items.items())
        else:
            wanted = [(int(i), self._items[int(i)]) for i in np.asarray(ids).ravel() if int(i) in self._items]
        by_shard: dict[str, list[tuple[int, int, int]]] = {}
        for item_id, (shard, start, length) in wanted:
            by_shard.setdefault(shard, []).append((item_id, start, length))
        out_ids: list[np.ndarray] = []
        out_scores: list[np.ndarray] = []
        for shard, entries in by_shard.items():
            entries.sort(key=lambda e: e[1])
            data = self._shards[shard].data
            out_ids.append(np.array([e[0] for e in entries], dtype=np.int64))
            out_scores.append(_maxsim_shard(q, data, entries))
        if not out_ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(out_ids), np.concatenate(out_scores)

    def search(self, query: np.ndarray, k: int, candidate_ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by MaxSim (sum over query tokens of the best item-token dot product)."""
        ids, scores = self.scores(query, candidate_ids)
        if len(ids) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        k = min(k, len(ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((ids[top], -scores[top]))]  # best first, ties by id
        return ids[top], scores[top].astype(np.float32)

    # ------------------------------------------------------------------ disk
    def save(self, directory: str | Path) -> None:
        """Write atomically: build ``directory``.tmp-*, then swap it in place of ``directory``."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            self._compact()
            live = {s for s, _, _ in self._items.values()}
            for name in sorted(live):
                shard = self._shards[name]
                target = tmp / f"{name}.npy"
                if shard.path is not None and shard.path.exists():
                    try:
                        os.link(shard.path, target)
                    except OSError:
                        shutil.copyfile(shard.path, target)
                else:
                    np.save(target, np.ascontiguousarray(shard.data), allow_pickle=False)
            names = sorted(live)
            index = {n: i for i, n in enumerate(names)}
            table = np.array([[i, index[s], st, ln] for i, (s, st, ln) in self._items.items()],
                             dtype=np.int64).reshape(-1, 4)
            np.save(tmp / "items.npy", table, allow_pickle=False)
            manifest = {"format": FORMAT, "version": FORMAT_VERSION, "dim": self.dim,
                        "dtype": self.dtype, "pool_factor": self.pool_factor, "count": len(self),
                        "tokens": int(table[:, 3].sum()) if len(table) else 0, "shards": names}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            _swap_in(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # From now on read the saved shards from disk rather than RAM.
        self._shards = {n: _Shard(n, np.load(directory / f"{n}.npy", mmap_mode="r"), directory / f"{n}.npy")
                        for n in names}

    @classmethod
    def load(cls, directory: str | Path) -> "MultiVectorStore":
        """Open a saved store; token shards are memory-mapped, not read into RAM."""
        directory = Path(directory)
        mpath = directory / "manifest.json"
        if not mpath.is_file():
            raise IndexNotFound(f"no multi-vector store at {directory} (manifest.json missing); build the index first")
        try:
            manifest = json.loads(mpath.read_text())
            if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
                raise IndexMismatch(f"{directory}: not a {FORMAT} v{FORMAT_VERSION} store; rebuild the index")
            store = cls(manifest["dim"], manifest["dtype"], manifest.get("pool_factor", 1))
            names = manifest["shards"]
            for n in names:
                data = np.load(directory / f"{n}.npy", mmap_mode="r", allow_pickle=False)
                if data.ndim != 2 or data.shape[1] != store.dim:
                    raise IndexCorrupt(f"{directory}/{n}.npy has shape {data.shape}; rebuild the index")
                store._shards[n] = _Shard(n, data, directory / f"{n}.npy")
            table = np.load(directory / "items.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise IndexCorrupt(f"multi-vector store at {directory} is unreadable ({e}); rebuild the index") from None
        for item_id, shard, start, length in table.tolist():
            if shard >= len(names) or start + length > store._shards[names[shard]].data.shape[0]:
                raise IndexCorrupt(f"{directory}/items.npy points outside its shards; rebuild the index")
            store._items[int(item_id)] = (names[shard], int(start), int(length))
        if len(store) != manifest.get("count"):
            raise IndexCorrupt(f"{directory}: manifest count {manifest.get('count')} != {len(store)} items")
        return store

    def _compact(self, dead_fraction: float = 0.5) -> None:
        """Rewrite shards whose deleted tokens outnumber ``dead_fraction`` of their rows."""
        live_tokens: dict[str, int] = {}
        for shard, _, length in self._items.values():
            live_tokens[shard] = live_tokens.get(shard, 0) + length
        for name, shard in list(self._shards.items()):
            if name not in live_tokens:
                del self._shards[name]
            elif live_tokens[name] < (1 - dead_fraction) * shard.data.shape[0]:
                members = [(i, s, ln) for i, (sh, s, ln) in self._items.items() if sh == name]
                new = f"shard-{uuid.uuid4().hex[:12]}"
                rows, start = [], 0
                for item_id, s, ln in members:
                    rows.append(np.asarray(shard.data[s:s + ln]))
                    self._items[item_id] = (new, start, ln)
                    start += ln
                self._shards[new] = _Shard(new, np.concatenate(rows))
                del self._shards[name]


def _maxsim_shard(q: np.ndarray, data: np.ndarray, entries: list[tuple[int, int, int]]) -> np.ndarray:
    """MaxSim for items laid out in ``data`` at (start, length), sorted by start; streams in blocks."""
    scores = np.empty(len(entries), dtype=np.float32)
    i = 0
    while i < len(entries):
        # gather a run of items whose tokens fit one block (at least one item)
        j, tokens = i, 0
        while j < len(entries) and (j == i or tokens + entries[j][2] <= _BLOCK_TOKENS):
            tokens += entries[j][2]
            j += 1
        group = entries[i:j]
        contiguous = all(group[t + 1][1] == group[t][1] + group[t][2] for t in range(len(group) - 1))
        if contiguous:
            block = np.asarray(data[group[0][1]:group[-1][1] + group[-1][2]], dtype=np.float32)
        else:
            block = np.concatenate([np.asarray(data[s:s + ln], dtype=np.float32) for _, s, ln in group])
        sims = q @ block.T  # (query tokens, block tokens)
        starts = np.cumsum([0] + [ln for _, _, ln in group[:-1]])
        scores[i:j] = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)
        i = j
    return scores


def _swap_in(tmp: Path, directory: Path) -> None:
    """Replace ``directory`` by ``tmp`` with renames, so either the old or the new store is there."""
    if directory.exists():
        old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
