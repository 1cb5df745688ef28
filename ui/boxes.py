"""Draw evidence boxes on page images.

Boxes are ``(x0, y0, x1, y1)`` in PDF points with a top-left origin (mmrag.types). A page
rendered at ``dpi`` is ``width_pt * dpi / 72`` pixels wide, so a box maps to pixels by that
factor; when the page size is known the factor is taken from the image itself, which stays
right whatever dpi the image was rendered at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from mmrag.types import BBox

if TYPE_CHECKING:
    from PIL.Image import Image

EVIDENCE_COLOR = (220, 20, 60)  # crimson: visible on white paper and on most figures


def scale_factors(image_size: tuple[int, int], page_size: tuple[float, float] | None = None,
                  dpi: float | None = None) -> tuple[float, float]:
    """Pixels per point along x and y: from image/page size, else ``dpi / 72``."""
    if page_size and page_size[0] > 0 and page_size[1] > 0:
        return image_size[0] / page_size[0], image_size[1] / page_size[1]
    if dpi:
        return dpi / 72.0, dpi / 72.0
    raise ValueError("need the page size in points or the dpi to place a box")


def to_pixels(bbox: BBox, sx: float, sy: float, image_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A point box as a pixel box clipped to the image (None if it falls outside)."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    w, h = image_size
    px = (max(0, round(x0 * sx)), max(0, round(y0 * sy)), min(w - 1, round(x1 * sx)), min(h - 1, round(y1 * sy)))
    if px[0] > px[2] or px[1] > px[3]:
        return None
    return px


def draw_boxes(image: "Image", boxes: Sequence[BBox], page_size: tuple[float, float] | None = None,
               dpi: float | None = None, color: tuple[int, int, int] = EVIDENCE_COLOR,
               label: str | None = None) -> "Image":
    """A copy of ``image`` with each box outlined and lightly filled; the original is untouched."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    base = image.convert("RGBA")
    sx, sy = scale_factors(base.size, page_size, dpi)
    overlay = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    line = max(2, round(min(base.size) / 250))
    for bbox in boxes:
        px = to_pixels(bbox, sx, sy, base.size)
        if px is None:
            continue
        # grow the outline outwards so it frames the evidence instead of covering its text
        framed = (max(0, px[0] - line), max(0, px[1] - line),
                  min(base.size[0] - 1, px[2] + line), min(base.size[1] - 1, px[3] + line))
        draw.rectangle(framed, fill=color + (40,), outline=color + (255,), width=line)
        if label:
            draw.text((framed[0] + line, max(0, framed[1] - 12 - line)), label, fill=color + (255,))
    return PILImage.alpha_composite(base, overlay).convert("RGB")
