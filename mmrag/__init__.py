"""mmrag: multimodal document retrieval and reranking.

``from mmrag import RAG`` is the Python API; heavy libraries load only when a backend needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mmrag.api import RAG


def __getattr__(name: str) -> Any:  # lazy, so `import mmrag` stays fast
    if name == "RAG":
        from mmrag.api import RAG

        return RAG
    raise AttributeError(f"module 'mmrag' has no attribute {name!r}")


__all__ = ["RAG", "__version__"]
