"""Tables without ruling lines (financial statements, reports), found from text alignment alone.

A row of a table is a text line split into three or more short cells by wide gaps; three or more
such rows stacked close together make a table. Its columns are the x-intervals the cells of all
rows fall into, which gives the Markdown. This costs one sort of the page's line segments, so it
runs on every page, unlike ``find_tables``.
"""

from __future__ import annotations

from mmrag.ingest import geometry as geo
from mmrag.ingest.tables import markdown_rows
from mmrag.types import BBox

Segment = tuple[BBox, str]


def split_line(spans: list[dict], transform=None) -> list[Segment]:
    """A dict line's spans cut where the gap between them is wider than about two spaces."""
    segs: list[Segment] = []
    cur_box: BBox | None = None
    cur_text = ""
    for s in spans:
        text = s["text"]
        if not text.strip():
            continue
        b = s["bbox"]
        gap_limit = max(2.0 * s["size"] * 0.5, 6.0)
        if cur_box is not None and b[0] - cur_box[2] <= gap_limit:
            cur_box = geo.merge(cur_box, tuple(b))
            cur_text += text if cur_text.endswith(" ") or text.startswith(" ") else " " + text
        else:
            if cur_box is not None:
                segs.append((cur_box, cur_text.strip()))
            cur_box, cur_text = tuple(b), text
    if cur_box is not None:
        segs.append((cur_box, cur_text.strip()))
    if transform:
        segs = [(transform(b), t) for b, t in segs]
    return segs


def _rows(segments: list[Segment]) -> list[list[Segment]]:
    rows: list[list[Segment]] = []
    for seg in sorted(segments, key=lambda s: ((s[0][1] + s[0][3]) / 2, s[0][0])):
        b = seg[0]
        cy, h = (b[1] + b[3]) / 2, max(b[3] - b[1], 1.0)
        if rows:
            rb = rows[-1][0][0]
            rcy = (rb[1] + rb[3]) / 2
            if abs(cy - rcy) <= 0.4 * h:
                rows[-1].append(seg)
                continue
        rows.append([seg])
    return [sorted(r, key=lambda s: s[0][0]) for r in rows]


def _is_cell_row(row: list[Segment]) -> bool:
    if len(row) < 3:
        return False
    words = [len(t.split()) for _, t in row]
    return sum(words) / len(words) <= 5 and max(words[1:]) <= 8


def find_text_tables(segments: list[Segment]) -> list[tuple[BBox, str]]:
    """Tables made of aligned short cells: (bbox, Markdown) pairs."""
    rows = _rows(segments)
    tables: list[tuple[BBox, str]] = []
    i = 0
    while i < len(rows):
        if not _is_cell_row(rows[i]):
            i += 1
            continue
        run = [i]
        j = i + 1
        while j < len(rows):
            prev = rows[run[-1]]
            h = max(s[0][3] - s[0][1] for s in prev)
            gap = min(s[0][1] for s in rows[j]) - max(s[0][3] for s in prev)
            if gap > 2.5 * h:
                break
            if _is_cell_row(rows[j]) or (len(rows[j]) <= 2 and j + 1 < len(rows) and _is_cell_row(rows[j + 1])):
                run.append(j)
                j += 1
            else:
                break
        if sum(1 for k in run if _is_cell_row(rows[k])) >= 3:
            if run[0] > 0 and len(rows[run[0] - 1]) >= 2:  # a header row of fewer, wider cells
                top = rows[run[0] - 1]
                h = max(s[0][3] - s[0][1] for s in top)
                if min(s[0][1] for s in rows[run[0]]) - max(s[0][3] for s in top) <= 2.5 * h:
                    run.insert(0, run[0] - 1)
            tables.append(_table([rows[k] for k in run]))
        i = j
    return tables


def _table(rows: list[list[Segment]]) -> tuple[BBox, str]:
    cols: list[list[float]] = []
    cell_rows = [r for r in rows if _is_cell_row(r)]  # header cells may span columns: not used here
    for seg in sorted((s for r in cell_rows for s in r), key=lambda s: s[0][0]):
        b = seg[0]
        if cols and b[0] <= cols[-1][1]:
            cols[-1][1] = max(cols[-1][1], b[2])
        else:
            cols.append([b[0], b[2]])
    grid = []
    for r in rows:
        cells = [""] * len(cols)
        for b, t in r:
            cx = (b[0] + b[2]) / 2
            k = next((n for n, (x0, x1) in enumerate(cols) if x0 - 1 <= cx <= x1 + 1), len(cols) - 1)
            cells[k] = (cells[k] + " " + t).strip()
        grid.append(cells)
    box = rows[0][0][0]
    for r in rows:
        for b, _ in r:
            box = geo.merge(box, b)
    return box, "\n".join(markdown_rows(grid))
