"""Faster stand-ins for the pure-Python hot spots of PyMuPDF's table finder.

``pymupdf.table.make_chars`` turns every character of the page into a dict, transforming its
box and origin through PyMuPDF ``Rect``/``Point``/``Matrix`` objects one call at a time: about
30 microseconds a character, most of ``find_tables`` on a dense page. ``fast_make_chars`` builds
the same dicts with the coordinates transformed for the whole page at once, in float32 like
MuPDF's own ``fz_transform_rect``/``fz_transform_point``, so the values are the same to the bit.
``chars_in_rect`` (does any character lie inside this box?) scans every character per call;
``_CharBoxes`` answers from arrays of the boxes.

``cell_text`` reads a cell as ``pymupdf.table.extract_cells`` does (characters more than half
inside the cell), from the page's raw text read once into plain tuples instead of re-extracted
and wrapped in ``Rect`` objects for every cell.

Each is checked against PyMuPDF's original in the tests. ``faster_table_chars`` swaps them in
for one ``find_tables`` call only, and only when ``pymupdf.table`` still has the shape they were
written against; otherwise PyMuPDF's own code runs.
"""

from __future__ import annotations

import string
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from mmrag.ingest import geometry as geo

_SWAP_LOCK = threading.Lock()
_WHITESPACE = frozenset(string.whitespace)


def _table_module() -> Any | None:
    """``pymupdf.table`` if it has the pieces ``fast_make_chars`` replaces and fills, else None."""
    try:
        from pymupdf import table
    except ImportError:  # pragma: no cover - PyMuPDF without the table module
        return None
    needed = ("make_chars", "CHARS", "FLAGS")
    if not all(hasattr(table, n) for n in needed) or not hasattr(table.CHARS, "extend"):
        return None
    if "make_chars" not in _ORIGINAL:
        _ORIGINAL["make_chars"] = table.make_chars
        if callable(getattr(table, "chars_in_rect", None)):
            _ORIGINAL["chars_in_rect"] = table.chars_in_rect
    return table


def _transform(xs: Any, ys: Any, m: tuple) -> tuple[Any, Any]:
    """Points through matrix ``m`` in float32, the arithmetic of MuPDF's ``fz_transform_point``."""
    import numpy as np

    a, b, c, d, e, f = (np.float32(v) for v in m)
    return xs * a + ys * c + e, xs * b + ys * d + f


def _transform_boxes(boxes: Any, m: tuple) -> Any:
    """Boxes (N x 4, float32) through ``m`` as ``fz_transform_rect`` does for an axis-aligned matrix."""
    import numpy as np

    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if m[0] < 0:
        x0, x1 = x1, x0
    if m[3] < 0:
        y0, y1 = y1, y0
    sx, sy = _transform(x0, y0, m)
    tx, ty = _transform(x1, y1, m)
    return np.stack([sx, sy, tx, ty], axis=1)


def fast_make_chars(page: Any, clip: Any = None, *, flags: int | None = None) -> Any:
    """``pymupdf.table.make_chars`` with the same output: fills ``CHARS``, returns the TextPage.

    ``flags`` replaces the text extraction flags of ``pymupdf.table.FLAGS`` (the default).
    """
    import numpy as np
    import pymupdf
    from pymupdf import table

    ctm = tuple(page.transformation_matrix)
    if abs(ctm[1]) >= 1.2e-7 or abs(ctm[2]) >= 1.2e-7:  # a rotated matrix: keep PyMuPDF's path
        return _ORIGINAL["make_chars"](page, clip=clip)
    page_number = page.number + 1
    doctop_base = page.rect.height * page.number
    textpage = page.get_textpage(clip=clip, flags=table.FLAGS if flags is None else flags)
    blocks = page.get_text("rawdict", textpage=textpage)["blocks"]
    textpage._mmrag_raw_blocks = blocks  # text_lines reads the same raw dict, not a second one

    runs = []  # (line direction, span, its chars sorted by x0)
    boxes: list = []
    origins: list = []
    for block in blocks:
        for line in block["lines"]:
            ldir = line["dir"]
            ldir = (round(ldir[0], 4), round(ldir[1], 4))
            for span in sorted(line["spans"], key=lambda s: s["bbox"][0]):
                chars = sorted(span["chars"], key=lambda c: c["bbox"][0])
                runs.append((ldir, span, chars))
                for ch in chars:
                    boxes.append(ch["bbox"])
                    origins.append(ch["origin"])
    if not boxes:
        return textpage
    box_arr = np.asarray(boxes, dtype=np.float32)
    org = np.asarray(origins, dtype=np.float32)
    y01 = _transform_boxes(box_arr, ctm)[:, 1::2].astype(np.float64).tolist()
    ox, oy = _transform(org[:, 0], org[:, 1], ctm)
    ox, oy = ox.astype(np.float64).tolist(), oy.astype(np.float64).tolist()

    out = []
    k = 0
    for ldir, span, chars in runs:
        upright = ldir[1] == 0
        fontname, fontsize = span["font"], span["size"]
        bold = bool(span["flags"] & pymupdf.TEXT_FONT_BOLD or span["char_flags"] & 8)
        color = pymupdf.sRGB_to_pdf(span["color"])
        m0, m1, m2, m3 = float(ldir[0]), float(-ldir[1]), float(ldir[1]), float(ldir[0])
        for ch in chars:
            x0, top, x1, bottom = ch["bbox"]
            y0, y1 = y01[k]
            out.append({
                "adv": x1 - x0 if upright else bottom - top,
                "bottom": bottom,
                "doctop": top + doctop_base,
                "fontname": fontname,
                "height": bottom - top,
                "matrix": (m0, m1, m2, m3, ox[k], oy[k]),
                "ncs": "DeviceRGB",
                "non_stroking_color": color,
                "non_stroking_pattern": None,
                "object_type": "char",
                "page_number": page_number,
                "size": fontsize if upright else bottom - top,
                "stroking_color": color,
                "stroking_pattern": None,
                "bold": bold,
                "text": ch["c"],
                "top": top,
                "upright": upright,
                "width": x1 - x0,
                "x0": x0,
                "x1": x1,
                "y0": y0,
                "y1": y1,
            })
            k += 1
    table.CHARS.extend(out)
    return textpage


_ORIGINAL: dict[str, Any] = {}


class _CharBoxes:
    """The boxes of the current character list as arrays, built once per list.

    ``clean_graphics`` asks ``chars_in_rect`` once per joined vector rectangle, and each call
    scans every character in Python; with the boxes in arrays a call is a few vector compares.
    """

    def __init__(self) -> None:
        self.chars: list | None = None  # held, so its id cannot be reused while cached
        self.size = -1
        self.boxes: Any = None

    def any_inside(self, chars: Any, rect: Any) -> bool:
        import numpy as np

        items = chars._list() if hasattr(chars, "_list") else chars
        if not isinstance(items, list):
            return _ORIGINAL["chars_in_rect"](chars, rect)
        if items is not self.chars or len(items) != self.size:
            self.chars, self.size = items, len(items)
            self.boxes = np.array([(c["x0"], c["y0"], c["x1"], c["y1"]) for c in items],
                                  dtype=np.float64).reshape(-1, 4)
        b = self.boxes
        # the test of pymupdf.table.chars_in_rect: the whole character box inside the rect
        inside = (rect[0] <= b[:, 0]) & (b[:, 2] <= rect[2]) & (rect[1] <= b[:, 1]) & (rect[3] >= b[:, 3])
        return bool(inside.any())

    def clear(self) -> None:
        self.chars, self.size, self.boxes = None, -1, None


_BOXES = _CharBoxes()


def _without_styles(page: Any, clip: Any = None) -> Any:
    import pymupdf
    from pymupdf import table

    return fast_make_chars(page, clip, flags=table.FLAGS & ~pymupdf.TEXT_COLLECT_STYLES)


@contextmanager
def faster_table_chars() -> Iterator[None]:
    """Within the block, ``find_tables`` builds its character list with ``fast_make_chars``,
    from text extracted without style detection.

    ``TEXT_COLLECT_STYLES`` (strikeout, underline and synthetic bold, found by matching text
    against the page's vector paths) costs 90% of the text extraction on a ruled page. It only
    feeds the Markdown marks of ``Table.to_markdown`` and its guess at header rows, neither of
    which ``tables.find_tables`` uses; the table grids found are the same.
    """
    table = _table_module()
    if table is None:
        yield
        return
    with _SWAP_LOCK:
        table.make_chars = _without_styles
        if "chars_in_rect" in _ORIGINAL:
            table.chars_in_rect = _BOXES.any_inside
        try:
            yield
        finally:
            table.make_chars = _ORIGINAL["make_chars"]
            if "chars_in_rect" in _ORIGINAL:
                table.chars_in_rect = _ORIGINAL["chars_in_rect"]
            _BOXES.clear()


Line = tuple[tuple, list[tuple[tuple, list[tuple[str, tuple]]]]]  # bbox, spans: bbox, chars


def text_lines(textpage: Any) -> list[tuple[tuple, list[Line]]]:
    """The page's text blocks as plain tuples: (bbox, lines), each line (bbox, spans), each
    span (bbox, [(character, bbox)]). Read once per page for all the cells of its tables."""
    blocks = []
    raw = getattr(textpage, "_mmrag_raw_blocks", None)
    for block in raw if raw is not None else textpage.extractRAWDICT()["blocks"]:
        if block["type"] != 0:
            continue
        lines = [(tuple(line["bbox"]), [(tuple(span["bbox"]), [(ch["c"], tuple(ch["bbox"])) for ch in span["chars"]])
                                       for span in line["spans"]])
                 for line in block["lines"]]
        blocks.append((tuple(block["bbox"]), lines))
    return blocks


def cell_text(blocks: list[tuple[tuple, list[Line]]], cell: tuple) -> str:
    """The text of the characters more than half inside ``cell`` (whitespace kept as spaces),
    one line of the cell per text line: ``pymupdf.table.extract_cells`` without Markdown marks."""
    parts: list[str] = []
    for bbox, lines in blocks:
        if not geo.touches(bbox, cell):
            continue
        for lbox, spans in lines:
            if not geo.touches(lbox, cell):
                continue
            if parts:
                parts.append("\n")
            for sbox, chars in spans:
                if not geo.touches(sbox, cell):
                    continue
                for c, box in chars:
                    if geo.intersection(box, cell) > 0.5 * geo.area(box):
                        parts.append(c)
                    elif c in _WHITESPACE:
                        parts.append(" ")
    return "".join(parts).strip()


def cell_texts(rows: list[Any], blocks: list[tuple[tuple, list[Line]]]) -> list[list[str | None]]:
    """Cell texts of a table's rows; None where a merged cell has no box of its own."""
    return [[cell_text(blocks, tuple(c)) if c is not None else None for c in row.cells] for row in rows]
