"""Tables with PyMuPDF ``find_tables``, run only where ruling lines make a table possible.

``find_tables`` costs 100-1000x a text extraction, so a page is only searched when its vector
paths hold at least a small grid of thin horizontal and vertical rules that text-aligned
tables (``gridtext``) do not already cover.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from mmrag.ingest import geometry as geo
from mmrag.ingest.table_speed import cell_texts, faster_table_chars, text_lines
from mmrag.types import BBox

THIN = 2.5  # points: a path this thin is a rule line


def table_region(vectors: list[tuple[BBox, bool]], width: float, height: float) -> BBox | None:
    """The box of the ruled grid on the page, or None when no grid can hold a table.

    A grid needs interior column rules: at least two vertical edges (thin lines or rectangle
    sides) that meet a horizontal edge strictly inside its span. Stacked row stripes (code
    listings, zebra rows) and frames have none, and ``find_tables`` would find only a one-column
    "table" there, which is discarded anyway.
    """
    hs: list[tuple[float, float, float]] = []  # (y, x0, x1)
    vs: list[tuple[float, float, float]] = []  # (x, y0, y1)
    page_area = width * height
    for b, is_rect in vectors:
        w, h = b[2] - b[0], b[3] - b[1]
        if h <= THIN and w >= 10:
            hs.append(((b[1] + b[3]) / 2, b[0], b[2]))
        elif w <= THIN and h >= 6:
            vs.append(((b[0] + b[2]) / 2, b[1], b[3]))
        elif is_rect and w >= 10 and h >= 6 and w * h < 0.5 * page_area:
            hs += [(b[1], b[0], b[2]), (b[3], b[0], b[2])]
            vs += [(b[0], b[1], b[3]), (b[2], b[1], b[3])]
    if len(hs) < 3 or not vs:
        return None
    hs.sort()
    ys = [h[0] for h in hs]
    box: BBox | None = None
    crossings = 0
    for x, y0, y1 in vs:
        lo, hi = bisect_left(ys, y0 - 2), bisect_right(ys, y1 + 2)
        crossed = [h for h in hs[lo:hi] if h[1] + 2 < x < h[2] - 2]
        if crossed:
            box = (x, y0, x, y1) if box is None else geo.merge(box, (x, y0, x, y1))
            crossings += 1
            for y, hx0, hx1 in crossed:
                e = (hx0, y, hx1, y)
                box = e if box is None else geo.merge(box, e)
    if crossings < 2 or box is None:
        return None
    return geo.clip(geo.expand(box, 3.0), width, height)


def find_tables(page: Any, to_page: Any = None) -> list[tuple[BBox, str]]:
    """Tables on the page as (bbox on the displayed page, Markdown) pairs.

    The whole page is searched (a clip changes which rules ``find_tables`` keeps and loses
    columns); ``to_page`` maps its unrotated boxes to the displayed page of a rotated page.
    Pieces of one table split by thick rules (same columns, stacked) are joined again.
    Cell text is the text of the characters that lie more than half inside the cell, line by
    line (what ``Table.to_markdown`` reads, without its inline bold/italic marks); the first row
    is the header. ``Table.to_markdown`` itself re-reads the page for every cell and searches
    the text above the table for column names: most of the cost of a table, for nothing the
    page text does not already hold.
    """
    with faster_table_chars():
        found = page.find_tables(use_layout=False)
    pieces: list[tuple[BBox, int, list[str]]] = []
    lines_of: dict = {}  # TextPage id -> its text lines, extracted once per page
    for tab in found.tables:
        if tab.row_count < 1 or tab.col_count < 2:
            continue
        tp = tab.textpage
        page_lines = lines_of.get(id(tp))
        if page_lines is None:
            page_lines = lines_of[id(tp)] = text_lines(tp)
        rows = cell_texts(tab.rows, page_lines)
        if sum(1 for row in rows if sum(1 for c in row if c and c.strip()) >= 2) < 1:
            continue  # boxes of a diagram, not a table: no row with two filled cells
        lines = markdown_rows(rows)  # merged cells stay empty: each text once, as on the page
        if lines:
            pieces.append((tuple(tab.bbox), tab.col_count, lines))
    pieces.sort(key=lambda t: (t[0][1], t[0][0]))
    joined: list[tuple[BBox, int, list[str]]] = []
    for b, cols, lines in pieces:
        if joined:
            pb, pcols, plines = joined[-1]
            same_columns = cols == pcols and abs(b[0] - pb[0]) < 3 and abs(b[2] - pb[2]) < 3
            if same_columns and -1 <= b[1] - pb[3] <= 12:
                body = [ln for k, ln in enumerate(lines) if k != 1]  # drop the piece's |---| line
                joined[-1] = (geo.merge(pb, b), cols, plines + body)
                continue
        joined.append((b, cols, lines))
    tables = []
    for b, _cols, lines in joined:
        if len(lines) < 3:  # header + separator + at least one row
            continue
        tables.append((to_page(b) if to_page else b, "\n".join(lines)))
    return tables


def _cell(value: Any) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return text.replace("|", "\\|")


def markdown_rows(rows: list[list[Any]]) -> list[str]:
    """A Markdown table (lines) whose first row is the header; empty rows are dropped."""
    rows = [[_cell(c) for c in row] for row in rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return []
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["|" + "|".join(rows[0]) + "|", "|" + "|".join(["---"] * width) + "|"]
    lines += ["|" + "|".join(r) + "|" for r in rows[1:]]
    return lines
