"""Index backends: FAISS dense segments, bm25s sparse, multi-vector, fusion, SQLite doc store.

``Index`` is the on-disk index (one folder); heavy libraries load when an index is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmrag.indexes.index import Index


def __getattr__(name: str) -> Any:
    if name == "Index":
        from mmrag.indexes.index import Index

        return Index
    raise AttributeError(f"module 'mmrag.indexes' has no attribute {name!r}")


__all__ = ["Index"]
