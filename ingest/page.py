"""One PyMuPDF page → one ``mmrag.types.Page``: layout text, blocks, tables, figures, OCR."""

from __future__ import annotations

import functools
import hashlib
import logging
from typing import TYPE_CHECKING, Any, Callable

from mmrag.ingest import geometry as geo
from mmrag.ingest.layout import (
    Unit,
    absorb_labels,
    classify,
    figure_regions,
    merge_paragraphs,
    units_from_dict,
)
from mmrag.ingest.order import reading_order
from mmrag.types import BBox, Block, Page

if TYPE_CHECKING:
    from mmrag.config import IngestConfig

IMAGE_OPS = ("fill-image", "fill-imgmask")
MIN_IMAGE_PX = 64


def text_flags() -> int:
    """The dict flags: PyMuPDF's defaults without image bytes (slow) but with vector boxes (free)."""
    import pymupdf

    return (pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES) | pymupdf.TEXT_COLLECT_VECTORS


def _transform(page: Any) -> Callable[[Any], BBox] | None:
    """Map boxes of the unrotated page to the displayed (rotated) page, or None when unrotated."""
    if not page.rotation:
        return None
    import pymupdf

    m = page.rotation_matrix

    def t(b: Any) -> BBox:
        r = pymupdf.Rect(b) * m
        return (r.x0, r.y0, r.x1, r.y1)

    return t


def image_boxes(page: Any, is_pdf: bool, transform: Callable | None) -> list[BBox]:
    """Where images are drawn, if the page draws any image of at least 64 px a side (smaller
    ones are icons and bullets). Only pages whose resources reach such an image pay for the pass."""
    if not is_pdf:
        r = page.rect
        return [(r.x0, r.y0, r.x1, r.y1)]
    if not _may_have_images(page):
        return []
    try:
        boxes, largest = _drawn_images(page)  # already in displayed-page coordinates
    except Exception:  # an unexpected binding change: the slower public passes give the same boxes
        if not any(img[2] >= MIN_IMAGE_PX and img[3] >= MIN_IMAGE_PX for img in page.get_images()):
            return []
        return [transform(b) if transform else tuple(b) for op, b in page.get_bboxlog() if op in IMAGE_OPS]
    return boxes if largest >= MIN_IMAGE_PX else []


@functools.cache
def _image_device_class() -> type:
    """A MuPDF device that only listens to image drawing.

    ``page.get_bboxlog()`` routes every glyph and path through Python callbacks; this device
    leaves those to MuPDF's no-op defaults, so the image pass costs about a third as much.
    """
    from pymupdf import mupdf

    class ImageBoxDevice(mupdf.FzDevice2):
        def __init__(self) -> None:
            super().__init__()
            self.boxes: list[BBox] = []
            self.largest = 0  # the smaller side, in pixels, of the largest image drawn
            self.use_virtual_fill_image()
            self.use_virtual_fill_image_mask()

        def _add(self, image, ctm) -> None:  # noqa: ANN001 (MuPDF image and matrix)
            r = mupdf.ll_fz_transform_rect(mupdf.fz_unit_rect, ctm)  # an image fills the unit square
            self.boxes.append((r.x0, r.y0, r.x1, r.y1))
            self.largest = max(self.largest, min(image.w, image.h))

        def fill_image(self, ctx, image, ctm, alpha, color_params):  # noqa: ANN001 (MuPDF callback)
            self._add(image, ctm)

        def fill_image_mask(self, ctx, image, ctm, colorspace, color, alpha, color_params):  # noqa: ANN001
            self._add(image, ctm)

    return ImageBoxDevice


def _drawn_images(page: Any) -> tuple[list[BBox], int]:
    """(boxes of every image drawn, smaller side in pixels of the largest) in one content pass."""
    from pymupdf import mupdf

    dev = _image_device_class()()
    mupdf.fz_run_page(page.this, dev, mupdf.FzMatrix(), mupdf.FzCookie())
    mupdf.fz_close_device(dev)
    return dev.boxes, dev.largest


def _may_have_images(page: Any) -> bool:
    """False when no image XObject of at least 64 px a side is reachable from the page's
    resources (inherited ones and those of its form XObjects included): most text pages, and
    pages with only icons or vector forms, skip the image pass. Images only drawn inline or
    inside soft masks and patterns are not looked for (2 pages of 1,883 in our test sets)."""
    from pymupdf import mupdf

    try:
        res = mupdf.pdf_page_resources(mupdf.pdf_page_from_fz_page(page.this))
        return _large_image_in(mupdf, res, set(), 0)
    except Exception:
        return True


def _large_image_in(mupdf: Any, resources: Any, seen: set, depth: int) -> bool:
    xobjects = mupdf.pdf_dict_get(resources, mupdf.PDF_ENUM_NAME_XObject)
    for i in range(mupdf.pdf_dict_len(xobjects)):
        obj = mupdf.pdf_dict_get_val(xobjects, i)
        key = mupdf.pdf_to_num(obj) or id(obj)
        if key in seen:
            continue
        seen.add(key)
        subtype = mupdf.pdf_dict_get(obj, mupdf.PDF_ENUM_NAME_Subtype)
        if mupdf.pdf_name_eq(subtype, mupdf.PDF_ENUM_NAME_Image):
            w = mupdf.pdf_to_int(mupdf.pdf_dict_get(obj, mupdf.PDF_ENUM_NAME_Width))
            h = mupdf.pdf_to_int(mupdf.pdf_dict_get(obj, mupdf.PDF_ENUM_NAME_Height))
            if min(w, h) >= MIN_IMAGE_PX:
                return True
        elif depth < 8 and mupdf.pdf_name_eq(subtype, mupdf.PDF_ENUM_NAME_Form):
            inner = mupdf.pdf_dict_get(obj, mupdf.PDF_ENUM_NAME_Resources)
            if mupdf.pdf_is_dict(inner) and _large_image_in(mupdf, inner, seen, depth + 1):
                return True
    return False


def extract_page(page: Any, *, doc_id: str, page_number: int, source_path: str, config: "IngestConfig",
                 is_pdf: bool = True, flags: int | None = None) -> Page:
    """Layout text, blocks in reading order, tables, figures and (where needed) OCR of one page."""
    rect = page.rect
    width, height = float(rect.width), float(rect.height)
    transform = _transform(page)
    d = page.get_text("dict", flags=flags if flags is not None else text_flags())
    raw_units, vectors, segments = units_from_dict(d, transform, collect_segments=config.tables)
    units = []
    for u in raw_units:
        c = geo.clip(u.bbox, width, height)
        if c is not None:
            u.bbox = c
            units.append(u)
    units = merge_paragraphs(units)
    classify(units)

    tables: list[tuple[BBox, str]] = []
    if config.tables:
        tables = _tables(page, vectors, segments, width, height, transform, is_pdf)
    if tables:
        units = [u for u in units if not any(geo.inside_share(u.bbox, t) >= 0.6 for t, _ in tables)]

    images = image_boxes(page, is_pdf, transform)
    regions = [r for r in figure_regions(images, vectors, width, height)
               if not any(geo.inside_share(r.bbox, t) >= 0.5 for t, _ in tables)]

    ocr_used = False
    if _needs_ocr(config, units, tables, regions, width * height):
        ocr_units = _ocr_units(page, config, units, tables, width, height)
        units.extend(ocr_units)
        ocr_used = bool(ocr_units) or config.ocr == "always"

    units = absorb_labels(regions, units, width * height)
    blocks = _blocks(units, tables, regions, width, height)
    order = reading_order([b.bbox for b in blocks])
    blocks = [blocks[i] for i in order]
    return Page(
        doc_id=doc_id, page_number=page_number, width=round(width, 2), height=round(height, 2),
        text="\n\n".join(b.text for b in blocks if b.text), blocks=blocks, source_path=source_path,
        content_hash=content_hash(blocks, width, height), ocr=ocr_used, rotation=int(page.rotation),
    )


def _tables(page: Any, vectors: list, segments: list, width: float, height: float,
            transform: Callable | None, is_pdf: bool) -> list[tuple[BBox, str]]:
    """Tables from aligned text (cheap, every page), and from ruling lines with ``find_tables``
    only where a ruled grid is not already covered by a text-aligned table."""
    from mmrag.ingest.gridtext import find_text_tables
    from mmrag.ingest.tables import find_tables, table_region

    text_tables = []
    for box, md in find_text_tables(segments) if segments else []:
        c = geo.clip(box, width, height)
        if c is not None:
            text_tables.append((c, md))
    region = table_region(vectors, width, height) if is_pdf and vectors else None  # displayed-page boxes
    if region is None or sum(geo.intersection(region, t) for t, _ in text_tables) >= 0.7 * geo.area(region):
        return text_tables
    ruled = []
    for b, md in find_tables(page, transform):
        c = geo.clip(b, width, height)
        if c is not None:
            ruled.append((c, md))
    # a ruled table has the better cells where both were found
    return ruled + [(t, md) for t, md in text_tables
                    if not any(geo.intersection(t, r) > 0.2 * geo.area(t) for r, _ in ruled)]


def _needs_ocr(config: "IngestConfig", units: list[Unit], tables: list, regions: list, page_area: float) -> bool:
    if config.ocr == "never":
        return False
    if config.ocr == "always":
        return True  # raises MissingDependency with the pip command when rapidocr is missing
    if not _little_text(config, units, tables, regions, page_area):
        return False
    from mmrag.ingest.ocr import available

    if not available():
        _warn_no_ocr()
        return False
    return True


def _little_text(config: "IngestConfig", units: list[Unit], tables: list, regions: list, page_area: float) -> bool:
    """Under ``ocr_min_chars`` of text, or images without text over ``ocr_image_fraction`` of the page."""
    chars = sum(u.chars for u in units) + sum(len(md) for _, md in tables)
    if chars < config.ocr_min_chars:
        return True
    image_only = 0.0
    for r in regions:
        if r.source != "image":
            continue
        inside = sum(u.chars for u in units if geo.inside_share(u.bbox, r.bbox) >= 0.5)
        if inside < 20:
            image_only += geo.area(r.bbox)
    return image_only > config.ocr_image_fraction * page_area


@functools.cache
def _warn_no_ocr() -> None:
    logging.getLogger("mmrag.ingest").warning(
        "pages without a text layer are not OCRed: pip install 'mmrag[ocr]' to read them")


def _ocr_units(page: Any, config: "IngestConfig", units: list[Unit], tables: list, width: float,
               height: float) -> list[Unit]:
    """OCR lines that the text layer does not already hold, grouped into paragraphs."""
    from mmrag.ingest.ocr import ocr_lines, ocr_scale
    from mmrag.ingest.render import pixmap, to_pil

    scale = ocr_scale(width, height, config.ocr_dpi)
    img = to_pil(pixmap(page, int(round(scale * 72))))
    real_scale = img.width / max(width, 1.0)
    taken = [u.bbox for u in units] + [t for t, _ in tables]
    out: list[Unit] = []
    lines = ocr_lines(img, real_scale, options=config.ocr_options)
    for text, box, _score in sorted(lines, key=lambda x: (x[1][1], x[1][0])):
        c = geo.clip(box, width, height)
        if c is None or any(geo.inside_share(c, t) >= 0.5 for t in taken):
            continue
        size = round((c[3] - c[1]) * 0.8, 1)  # a line box is about 1.25 font sizes tall
        out.append(Unit(bbox=c, lines=[text], size=size, bold=False, chars=len(text), source="ocr"))
    return merge_paragraphs(out)


def _blocks(units: list[Unit], tables: list, regions: list, width: float, height: float) -> list[Block]:
    blocks: list[Block] = []
    for u in units:
        blocks.append(Block(text=u.text, bbox=geo.rounded(u.bbox), kind=u.kind, source=u.source))
    for b, md in tables:
        blocks.append(Block(text=md, bbox=geo.rounded(b), kind="table", source="layout"))
    for r in regions:
        labels = sorted(r.units, key=lambda u: (u.bbox[1], u.bbox[0]))
        source = "ocr" if any(u.source == "ocr" for u in labels) else "layout"
        c = geo.clip(r.bbox, width, height) or r.bbox
        blocks.append(Block(text=" ".join(u.text for u in labels), bbox=geo.rounded(c), kind="figure",
                            source=source))
    return blocks


def content_hash(blocks: list[Block], width: float, height: float) -> str:
    """SHA-256 of the page's size, text and layout: changes exactly when the extracted page does."""
    parts = [f"{width:.1f} {height:.1f}"]
    for b in blocks:
        x0, y0, x1, y1 = b.bbox
        parts.append(f"{b.kind}\x1f{x0:.1f} {y0:.1f} {x1:.1f} {y1:.1f}\x1f{b.text}")
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
