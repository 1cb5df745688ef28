"""Writer process for the crash and concurrency tests: index docs d0..d{N-1}, resuming.

Usage: python -m tests.indexes.crash_writer ROOT N [COMMIT_DOCS [VECTORS [MILVUS_URI]]]. Documents
already in the index are skipped, as `RAG.index` skips unchanged files, so a rerun after kill -9
completes the job. VECTORS is faiss (default) or milvus (MILVUS_URI, default a Milvus Lite file in ROOT).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mmrag.config import IndexConfig
from mmrag.indexes.index import Index
from tests.indexes.helpers import hash_fields, word_doc


def main(root: str, n: int, commit_docs: int = 3, vectors: str = "faiss", milvus_uri: str = "milvus.db") -> None:
    cfg = IndexConfig(commit_docs=commit_docs, max_segments=3, vectors=vectors, milvus_uri=milvus_uri)
    with Index.open(Path(root), hash_fields(), cfg, write=True) as ix:
        done = {d["doc_id"] for d in ix.documents()}
        for i in range(n):
            if f"d{i}" not in done:
                ix.add(*word_doc(i, n_pages=1 + i % 3))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(a) for a in sys.argv[3:4]), *sys.argv[4:6])
