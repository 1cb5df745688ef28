"""The small, stable records that flow between stages: Page, Chunk, Candidate, Hit, Answer.

Boxes are always ``(x0, y0, x1, y1)`` in PDF points with the origin at the page's top-left
(PyMuPDF's convention), so a box can be drawn on a page image by scaling with ``dpi / 72``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # PIL is only needed by whoever touches images
    from PIL.Image import Image

BBox = tuple[float, float, float, float]
BlockKind = Literal["text", "title", "table", "figure", "caption"]
BLOCK_KINDS: tuple[str, ...] = ("text", "title", "table", "figure", "caption")


def union_bbox(boxes: list[BBox]) -> BBox | None:
    """Smallest box that holds all ``boxes`` (None for none)."""
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@dataclass
class Block:
    """A piece of a page's layout: its text, its box in page points, and what kind it is."""

    text: str
    bbox: BBox
    kind: str = "text"
    source: str = "layout"  # "layout" (PDF text layer) or "ocr"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bbox"] = list(self.bbox)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Block":
        return cls(text=d["text"], bbox=tuple(d["bbox"]), kind=d.get("kind", "text"),
                   source=d.get("source", "layout"))


@dataclass
class Page:
    """One page of one document: layout text with boxes, and an image rendered on demand."""

    doc_id: str
    page_number: int  # 1-based
    width: float  # points
    height: float  # points
    text: str = ""
    blocks: list[Block] = field(default_factory=list)
    source_path: str = ""
    content_hash: str = ""  # SHA-256 of the page's text and layout (changes when the page does)
    image_path: str | None = None  # set once an image is written to disk
    ocr: bool = False  # True when OCR produced (part of) the text
    rotation: int = 0
    error: dict | None = None  # {"type","message"} when this page failed; the document goes on
    _image: Any = field(default=None, repr=False, compare=False)

    @property
    def page_id(self) -> str:
        return f"{self.doc_id}#{self.page_number}"

    def image(self, dpi: int | None = None) -> "Image":
        """The page as a PIL image: from ``image_path`` if written, else rendered now (cached)."""
        if self._image is not None and dpi is None:
            return self._image
        if self.image_path and dpi is None:
            from PIL import Image as PILImage

            with PILImage.open(self.image_path) as im:
                self._image = im.convert("RGB")
            return self._image
        from mmrag.ingest.render import render_page

        img = render_page(self.source_path, self.page_number, dpi=dpi)
        if dpi is None:
            self._image = img
        return img

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "page_number": self.page_number,
            "width": self.width,
            "height": self.height,
            "text": self.text,
            "blocks": [b.to_dict() for b in self.blocks],
            "source_path": self.source_path,
            "content_hash": self.content_hash,
            "image_path": self.image_path,
            "ocr": self.ocr,
            "rotation": self.rotation,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Page":
        return cls(
            doc_id=d["doc_id"], page_number=int(d["page_number"]), width=float(d["width"]),
            height=float(d["height"]), text=d.get("text", ""),
            blocks=[Block.from_dict(b) for b in d.get("blocks", [])],
            source_path=d.get("source_path", ""), content_hash=d.get("content_hash", ""),
            image_path=d.get("image_path"), ocr=bool(d.get("ocr", False)),
            rotation=int(d.get("rotation", 0)), error=d.get("error"),
        )


@dataclass
class Document:
    """A whole input file: its identity (SHA-256 of the bytes), metadata and pages."""

    doc_id: str
    path: str
    title: str = ""
    metadata: dict = field(default_factory=dict)
    page_count: int = 0
    pages: list[Page] = field(default_factory=list)


@dataclass
class Chunk:
    """A retrieval passage of ~200 words that never crosses a page."""

    chunk_id: str  # "<doc_id>#<page>#<i>"
    doc_id: str
    page_number: int
    text: str
    bbox: BBox | None = None  # union of its blocks' boxes
    kinds: tuple[str, ...] = ()  # block kinds it contains
    heading: str = ""  # the section title in force where the chunk starts, when not in its text

    @property
    def index_text(self) -> str:
        """What retrieval encodes and BM25 indexes: the heading gives a chunk its section's words."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bbox"] = list(self.bbox) if self.bbox else None
        d["kinds"] = list(self.kinds)
        return d


@dataclass
class Candidate:
    """What a reranker reads: an id, text, an optional page image, and the first-stage score."""

    id: str
    text: str
    score: float = 0.0  # first-stage score
    image: Any = None  # PIL image, or a Page whose .image() renders it
    metadata: dict = field(default_factory=dict)

    def get_image(self) -> "Image | None":
        img = self.image
        if img is not None and hasattr(img, "image") and callable(img.image):
            return img.image()
        return img


@dataclass
class Scored:
    """A candidate with the score a reranker gave it; lists of these are sorted best first."""

    candidate: Candidate
    score: float
    rank: int = 0

    @property
    def id(self) -> str:
        return self.candidate.id


@dataclass
class Hit:
    """A search result: one page, its score, and the best chunk as snippet with its box."""

    doc_id: str
    path: str
    page: int
    score: float
    snippet: str = ""
    bbox: BBox | None = None
    chunk_id: str | None = None
    scores: dict = field(default_factory=dict)  # per-field scores before fusion / reranking
    text: str = ""  # full page text (for rerankers and generators); not in to_dict
    blocks: list[Block] = field(default_factory=list)  # page layout, for citing a region
    image_path: str | None = None  # page image on disk, when the index stores one

    @property
    def page_id(self) -> str:
        return f"{self.doc_id}#{self.page}"

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "path": self.path,
            "page": self.page,
            "score": float(self.score),
            "snippet": self.snippet,
            "bbox": list(self.bbox) if self.bbox else None,
        }


@dataclass
class Citation:
    doc_id: str
    path: str
    page: int
    bbox: BBox | None = None

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "path": self.path, "page": self.page,
                "bbox": list(self.bbox) if self.bbox else None}


@dataclass
class Answer:
    """A generated answer with the pages (and regions) it rests on."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    contexts: list[Hit] = field(default_factory=list)
    answerable: bool = True
    confidence: float | None = None

    def to_dict(self) -> dict:
        return {
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "contexts": [h.to_dict() for h in self.contexts],
        }
