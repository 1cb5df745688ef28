"""Small synthetic documents for index tests (no PDFs, no models)."""

from __future__ import annotations

from pathlib import Path

from mmrag.config import FieldConfig, IndexConfig
from mmrag.types import Block, Chunk, Document, Page

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def hash_fields(dim: int = 32) -> list[FieldConfig]:
    from tests.hash_encoder import register

    register()
    return [FieldConfig(name="text", encoder="test-hash", input="chunks", options={"dim": dim})]


def make_doc(i: int, pages: list[list[str]], metadata: dict | None = None, root: str = "/docs") -> tuple:
    """Document ``d{i}``: each page is a list of chunk texts, one block (with a box) per chunk."""
    doc = Document(doc_id=f"d{i}", path=f"{root}/doc{i}.pdf", metadata=metadata or {}, page_count=len(pages))
    out_pages, chunks = [], []
    for n, texts in enumerate(pages, 1):
        blocks = [Block(t, (10.0, 20.0 + 30 * j, 300.0, 40.0 + 30 * j)) for j, t in enumerate(texts)]
        out_pages.append(Page(doc_id=doc.doc_id, page_number=n, width=612, height=792,
                              text="\n".join(texts), blocks=blocks, source_path=doc.path))
        chunks += [Chunk(chunk_id=f"{doc.doc_id}#{n}#{j}", doc_id=doc.doc_id, page_number=n, text=t,
                         bbox=b.bbox) for j, (t, b) in enumerate(zip(texts, blocks))]
    return doc, out_pages, chunks


def word_doc(i: int, n_pages: int = 2) -> tuple:
    """Deterministic doc whose pages use distinct word mixes (so searches have clear winners)."""
    pages = []
    for p in range(n_pages):
        a, b, c = WORDS[(i + p) % 26], WORDS[(3 * i + p + 7) % 26], WORDS[(5 * i + 2 * p + 11) % 26]
        pages.append([f"{a} {b} {a} report number {i} page {p + 1}", f"{c} appendix {b} {c}"])
    return make_doc(i, pages, {"group": str(i % 3)})


def index_cfg(**kw) -> IndexConfig:
    return IndexConfig(**kw)


def build(root: Path, docs: list[tuple], fields=None, cfg: IndexConfig | None = None, commit_each: bool = False):
    from mmrag.indexes.index import Index

    fields = fields or hash_fields()
    cfg = cfg or IndexConfig()
    with Index.open(root, fields, cfg, write=True) as ix:
        for d in docs:
            ix.add(*d)
            if commit_each:
                ix.commit()
    return Index.open(root, fields, cfg)
