"""Page layout from PyMuPDF's text dict: lines → paragraphs, block kinds, figures.

The unit of work is a ``Unit``: a run of lines with one font size and weight. Units are merged
into paragraphs, classified (title, caption, text), and absorbed into figures when they are
labels inside an image or a vector drawing (a chart). Everything stays in page points with a
top-left origin, already rotated to the page as displayed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmrag.ingest import geometry as geo
from mmrag.types import BBox

CAPTION_RE = re.compile(
    r"^(fig(ure)?s?\.?|table|tab\.|chart|exhibit|graph|plate|scheme|diagram|illustration)\s*"
    r"([0-9]+|[ivxlc]+\b|[a-z]\b)",
    re.IGNORECASE,
)
SOURCE_RE = re.compile(r"^(source|sources|note|notes)\s*:", re.IGNORECASE)
BOLD = 16  # PyMuPDF span flag


@dataclass(slots=True)
class Unit:
    """A run of lines sharing size and weight: the raw material of blocks."""

    bbox: BBox
    lines: list[str]
    size: float
    bold: bool
    chars: int
    kind: str = "text"
    source: str = "layout"
    absorbed: list["Unit"] = field(default_factory=list)

    @property
    def text(self) -> str:
        return join_lines(self.lines)

    @property
    def line_height(self) -> float:
        return (self.bbox[3] - self.bbox[1]) / max(1, len(self.lines))


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph as one string; a word hyphenated at a line end is rejoined."""
    out = ""
    for line in lines:
        if not out:
            out = line
        elif out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[:1].islower():
            out = out[:-1] + line
        else:
            out += " " + line
    return out


def units_from_dict(page_dict: dict, transform=None, collect_segments: bool = True
                    ) -> tuple[list[Unit], list[tuple[BBox, bool]], list]:
    """Text units, vector paths ``(bbox, is_rect)`` and line segments ``(bbox, text)`` (a line
    cut at wide gaps, for tables without rules) from ``get_text("dict")`` output.

    ``transform`` maps an unrotated box to the displayed page (for rotated pages). Segments are
    only collected when ``collect_segments`` is true (table search is on).
    """
    from mmrag.ingest.gridtext import split_line

    units: list[Unit] = []
    vectors: list[tuple[BBox, bool]] = []
    segments: list = []
    for block in page_dict["blocks"]:
        btype = block["type"]
        if btype == 3:
            b = block["bbox"]
            vectors.append((transform(b) if transform else tuple(b), bool(block.get("isrect"))))
            continue
        if btype != 0:
            continue
        cur: Unit | None = None
        for line in block["lines"]:
            spans = line["spans"]
            if len(spans) == 1:  # the common case, kept cheap
                span = spans[0]
                text = span["text"].strip()
                if not text:
                    continue
                size = round(span["size"], 1)
                bold = bool(span["flags"] & BOLD)
            else:
                texts = [s["text"] for s in spans]
                text = "".join(texts).strip()
                if not text:
                    continue
                lengths = list(map(len, texts))
                size = round(spans[lengths.index(max(lengths))]["size"], 1)  # the longest span's
                bold = all(s["flags"] & BOLD for s, t in zip(spans, texts) if t.strip())
            box = transform(line["bbox"]) if transform else line["bbox"]
            if collect_segments and line["dir"][1] == 0:  # horizontal text only: table cells
                if len(spans) == 1:
                    segments.append((box, text))
                else:
                    segments.extend(split_line(spans, transform))
            if cur is not None and bold == cur.bold and abs(size - cur.size) <= 0.1 * cur.size:
                cur.lines.append(text)
                cur.bbox = geo.merge(cur.bbox, box)
                cur.chars += len(text)
            else:
                cur = Unit(bbox=tuple(box), lines=[text], size=size, bold=bold, chars=len(text))
                units.append(cur)
    return units, vectors, segments


def merge_paragraphs(units: list[Unit]) -> list[Unit]:
    """Join consecutive units that are lines of one paragraph (same style, stacked, aligned)."""
    out: list[Unit] = []
    for u in units:
        prev = out[-1] if out else None
        if prev is not None and _continues(prev, u):
            prev.lines.extend(u.lines)
            prev.bbox = geo.merge(prev.bbox, u.bbox)
            prev.chars += u.chars
        else:
            out.append(u)
    return out


def _continues(a: Unit, b: Unit) -> bool:
    if a.kind != b.kind or a.source != b.source or a.bold != b.bold:
        return False
    if abs(a.size - b.size) > 0.1 * max(a.size, b.size):
        return False
    lh = max(a.line_height, b.line_height, 1.0)
    gap = b.bbox[1] - a.bbox[3]
    if gap < -0.35 * lh or gap > 0.7 * lh:
        return False
    wa, wb = a.bbox[2] - a.bbox[0], b.bbox[2] - b.bbox[0]
    overlap = min(a.bbox[2], b.bbox[2]) - max(a.bbox[0], b.bbox[0])
    return overlap >= 0.5 * min(wa, wb) or abs(a.bbox[0] - b.bbox[0]) < 3


def body_size(units: list[Unit]) -> float:
    """The font size that holds the median character of the page (the body text size)."""
    if not units:
        return 0.0
    by_size = sorted((u.size, u.chars) for u in units)
    half = sum(c for _, c in by_size) / 2
    acc = 0
    for size, chars in by_size:
        acc += chars
        if acc >= half:
            return size
    return by_size[-1][0]


def classify(units: list[Unit]) -> None:
    """Set ``kind`` to title or caption where the text says so; the rest stay text."""
    body = body_size(units)
    for u in units:
        if u.kind != "text":
            continue
        text = u.lines[0]
        if CAPTION_RE.match(text) or (SOURCE_RE.match(text) and sum(len(ln.split()) for ln in u.lines) <= 80):
            u.kind = "caption"
            continue
        if len(u.lines) > 3:  # long paragraphs are never titles: skip the word count
            continue
        words = sum(len(line.split()) for line in u.lines)
        if words > 30 or words == 0 or not any(ch.isalpha() for ch in u.text):
            continue
        larger = body > 0 and u.size >= 1.15 * body
        bold_heading = u.bold and u.size >= 0.95 * body and len(u.lines) <= 2 and words <= 15 \
            and not u.text.rstrip().endswith((".", ",", ";"))
        if larger or bold_heading:
            u.kind = "title"


@dataclass(slots=True)
class Region:
    """A figure: an image or a cluster of vector paths, with the label units it absorbed."""

    bbox: BBox
    source: str  # "image" | "vector"
    units: list[Unit] = field(default_factory=list)


def figure_regions(images: list[BBox], vectors: list[tuple[BBox, bool]], width: float,
                   height: float) -> list[Region]:
    """Candidate figures: sizeable images, and clusters of many vector paths (charts, diagrams)."""
    page_area = max(1.0, width * height)
    regions: list[Region] = []
    boxes = []
    for b in images:
        c = geo.clip(b, width, height)
        if c and c[2] - c[0] >= 20 and c[3] - c[1] >= 20 and geo.area(c) >= 0.01 * page_area:
            boxes.append(c)
    for b, _n in geo.cluster(boxes, 1.0):
        regions.append(Region(b, "image"))
    if len(vectors) < 6:
        return regions
    limit = 0.6 * page_area  # page backgrounds are not figures
    paths = {(max(0.0, b[0]), max(0.0, b[1]), min(width, b[2]), min(height, b[3])) for b, _ in vectors}
    paths = [b for b in paths if b[0] <= b[2] and b[1] <= b[3] and (b[2] - b[0]) * (b[3] - b[1]) < limit]
    for b, n in geo.cluster(paths, 6.0):  # parts of one chart lie a few points apart
        if n >= 6 and b[2] - b[0] >= 30 and b[3] - b[1] >= 30 and geo.area(b) >= 0.015 * page_area:
            regions.append(Region(b, "vector"))
    return regions


def absorb_labels(regions: list[Region], units: list[Unit], page_area: float) -> list[Unit]:
    """Move short text that sits inside a figure into it; returns the units left on the page.

    Running text (long units) stays on the page even inside a figure. A small vector cluster
    around running text is a shaded text box and a page-size one a background: both dropped,
    as is a page-size image under running or OCR text (a scan, a background).
    """
    kept = list(units)
    final: list[Region] = []
    for r in sorted(regions, key=lambda r: -geo.area(r.bbox)):
        near = geo.expand(r.bbox, 12.0 if r.source == "vector" else 2.0)
        inside = [u for u in kept if u.kind != "title" and geo.inside_share(u.bbox, near) >= 0.8]
        words = [sum(len(line.split()) for line in u.lines) for u in inside]
        is_label = [w <= 25 and u.kind != "caption" for u, w in zip(inside, words)]
        labels = [u for u, lab in zip(inside, is_label) if lab]
        long_words = sum(w for w, lab in zip(words, is_label) if not lab)
        share = geo.area(r.bbox) / max(page_area, 1.0)
        if r.source == "vector" and long_words > 40 and (share < 0.03 or share > 0.6):
            continue  # a small shaded text box, or a page background: not a figure
        if r.source == "image" and share >= 0.7:
            if long_words > 40 or any(u.source == "ocr" for u in inside):
                continue  # a scan or a background under text: the text is the content
        if any(geo.inside_share(r.bbox, f.bbox) > 0.9 for f in final):
            # nested in a bigger figure: its labels belong to that one
            continue
        r.units = labels
        ids = {id(u) for u in labels}
        kept = [u for u in kept if id(u) not in ids]
        bbox = r.bbox
        for u in labels:
            bbox = geo.merge(bbox, u.bbox)
        r.bbox = bbox
        final.append(r)
    regions[:] = final
    return kept
