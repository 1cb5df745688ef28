"""Tables without ruling lines (financial statements, reports), found from text alignment alone.

A row of a table is a text line split into three or more short cells by wide gaps; three or more
such rows stacked close together make a table. Its columns are the x-intervals the cells of all
rows fall into, which gives the Markdown. This costs one sort of the page's line segments, so it
runs on every page, unlike ``find_tables``.
"""

from __future__ import annotations

import re

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


# a value cell: an amount, a share or a count, optionally with a footnote letter ("53 b", "(1,238)",
# "$ 14.2", "47%", "—"); a lone "(3)" is left out: numbered equations put one at a line's end
VALUE_RE = re.compile(r"^(?:[$€£]\s?)?\(?[-−–+]?[$€£]?\d[\d,.]*\)?\s?%?(?:\s[a-z]{1,4})?$|^[-−–—]$")
EQUATION_NO_RE = re.compile(r"^\(\d{1,2}(?:\.\d{1,2})?[a-z]?\)$")
MAX_BRIDGE = 5  # label rows (a section name, a label wrapped over lines) a table may hold in a row
MAX_BRIDGE_WORDS = 30


def _is_cell_row(row: list[Segment]) -> bool:
    if len(row) < 3:
        return False
    words = [len(t.split()) for _, t in row]
    return sum(words) / len(words) <= 5 and max(words[1:]) <= 8


def _is_pair_row(row: list[Segment]) -> bool:
    """A label and one value: a row of a two-column table of amounts (or of a contents list)."""
    if len(row) != 2:
        return False
    value = row[1][1]
    return (len(value) <= 16 and VALUE_RE.match(value) is not None and EQUATION_NO_RE.match(value) is None
            and len(row[0][1].split()) <= 8)  # longer: a line of running text beside a chart axis


def _is_row(row: list[Segment], ref: BBox | None) -> bool:
    """A table row: three or more short cells, or a label and a value that sits in the value
    column ``ref`` (the last cell of the table row above; None at a table's start)."""
    if _is_cell_row(row):
        return True
    if ref is None or not _is_pair_row(row):
        return False
    v = row[1][0]
    return min(v[2], ref[2]) > max(v[0], ref[0])  # the values overlap: one column


def _height(row: list[Segment]) -> float:
    return max(s[0][3] - s[0][1] for s in row)


def _gap(upper: list[Segment], lower: list[Segment]) -> float:
    return min(s[0][1] for s in lower) - max(s[0][3] for s in upper)


def _label_rows(rows: list[list[Segment]], last: int, j: int, ref: BBox) -> int:
    """How many rows from ``j`` on are label rows inside a table whose last row is ``last``: up
    to ``MAX_BRIDGE`` rows that are not table rows but a label with at most values after it (a
    section name, a label wrapped over lines, a row of dashes), each within a line gap of the
    one above and followed as closely by a table row. 0 when the table ends at ``j``."""
    k = j
    prev = rows[last]
    while k < len(rows) and k - j < MAX_BRIDGE and not _is_row(rows[k], ref):
        row = rows[k]
        if (_gap(prev, row) > _height(prev) or len(row[0][1].split()) > MAX_BRIDGE_WORDS
                or not all(VALUE_RE.match(t) for _, t in row[1:])):
            return 0  # a gap, running text, or cells of another layout (a list set in columns)
        prev = row
        k += 1
    if k == j or k == len(rows) or not _is_row(rows[k], ref) or _gap(prev, rows[k]) > _height(prev):
        return 0
    return k - j


def _labels_above(rows: list[list[Segment]], first: int) -> list[int]:
    """The section labels right above a table's first row ("Current assets:"): up to
    ``MAX_BRIDGE`` one-cell rows of a few words, as close as the lines of a paragraph, that are
    not a caption."""
    from mmrag.ingest.layout import CAPTION_RE

    k = first
    while k > 0 and first - k < MAX_BRIDGE:
        row = rows[k - 1]
        if (len(row) != 1 or len(row[0][1].split()) > 8 or _gap(row, rows[k]) > _height(row)
                or CAPTION_RE.match(row[0][1])):
            break
        k -= 1
    return list(range(k, first))


def find_text_tables(segments: list[Segment]) -> list[tuple[BBox, str]]:
    """Tables made of aligned short cells: (bbox, Markdown) pairs.

    A table starts at a row of three or more short cells, or at two label-and-value rows whose
    values line up. It goes on through such rows and through short label rows between them (a
    section name, a label wrapped over lines) that sit as close as the lines of a paragraph.
    """
    rows = _rows(segments)
    tables: list[tuple[BBox, str]] = []
    i = 0
    while i < len(rows):
        row = rows[i]
        if not (_is_cell_row(row) or (_is_pair_row(row) and i + 1 < len(rows)
                                      and _is_row(rows[i + 1], row[1][0]))):
            i += 1
            continue
        run, real = _run(rows, i, True)
        if 2 * (len(run) - len(real)) > len(real):
            # label rows for more than every other table row: lines of a text column set beside
            # the table (or cells wrapped over many lines); the table keeps to its own rows then
            run, real = _run(rows, i, False)
        j = run[-1] + 1
        if len(real) >= 3:
            if 2 * (len(run) - len(real)) <= len(real):
                run[:0] = _labels_above(rows, run[0])
            if run[0] > 0 and len(rows[run[0] - 1]) >= 2:  # a header row of fewer, wider cells
                top = rows[run[0] - 1]
                if _gap(top, rows[run[0]]) <= 2.5 * _height(top):
                    run.insert(0, run[0] - 1)
            tables.append(_table([rows[k] for k in run], [rows[k] for k in real]))
        i = j
    return tables


def _run(rows: list[list[Segment]], i: int, labels: bool) -> tuple[list[int], list[int]]:
    """The rows of the table that starts at row ``i``, and among them the table rows (not label
    rows); label rows of more than one line are only taken with ``labels``."""
    run = [i]
    real = [i]
    j = i + 1
    while j < len(rows):
        prev = rows[run[-1]]
        ref = rows[real[-1]][-1][0]
        if _gap(prev, rows[j]) > 2.5 * _height(prev):
            break
        if _is_row(rows[j], ref):
            run.append(j)
            real.append(j)
            j += 1
            continue
        if len(rows[j]) <= 2 and j + 1 < len(rows) and _is_row(rows[j + 1], ref):
            run.append(j)
            j += 1
            continue
        n = _label_rows(rows, run[-1], j, ref) if labels else 0
        if not n:
            break
        run.extend(range(j, j + n))
        j += n
    return run, real


def _table(rows: list[list[Segment]], cell_rows: list[list[Segment]]) -> tuple[BBox, str]:
    """The box and Markdown of ``rows``; columns come from ``cell_rows`` (header and label
    cells may span columns: not used for them)."""
    cols: list[list[float]] = []
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
