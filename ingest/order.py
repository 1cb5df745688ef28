"""Reading order by recursive XY-cut, reading multi-column pages column by column.

Plain XY-cut cuts a two-column page into horizontal bands wherever both columns happen to have
a gap at the same height, and then reads across the columns band by band. Here consecutive
bands that share a column gutter are merged back before the vertical cut, so each column is
read to its end before the next one starts; full-width elements (titles, wide figures) still
separate the column runs above and below them.
"""

from __future__ import annotations

from mmrag.types import BBox

COL_GAP = 3.0  # points of empty space that separate columns
ROW_GAP = 0.5


def reading_order(boxes: list[BBox]) -> list[int]:
    """Indices of ``boxes`` in reading order (top-to-bottom, column by column)."""
    return _order(list(range(len(boxes))), boxes)


def _order(idx: list[int], boxes: list[BBox]) -> list[int]:
    if len(idx) <= 1:
        return idx
    bands, _ = _split(idx, boxes, axis=1, min_gap=ROW_GAP)
    if len(bands) > 1:
        out: list[int] = []
        for group, gutter in _join_column_bands(bands, boxes):
            if gutter is not None and len(group) > 1:
                cols, _ = _split(group, boxes, axis=0, min_gap=COL_GAP)
                for col in cols:
                    out.extend(_order(col, boxes))
            else:
                out.extend(_order(group, boxes))
        return out
    cols, _ = _split(idx, boxes, axis=0, min_gap=COL_GAP)
    if len(cols) > 1:
        return [i for col in cols for i in _order(col, boxes)]
    return sorted(idx, key=lambda i: (boxes[i][1], boxes[i][0]))


def _split(idx: list[int], boxes: list[BBox], axis: int, min_gap: float
           ) -> tuple[list[list[int]], list[tuple[float, float]]]:
    """Groups separated by empty stripes along ``axis`` (0 = x, 1 = y), and those stripes."""
    lo, hi = axis, axis + 2
    items = sorted(idx, key=lambda i: boxes[i][lo])
    groups: list[list[int]] = [[items[0]]]
    gaps: list[tuple[float, float]] = []
    end = boxes[items[0]][hi]
    for i in items[1:]:
        start = boxes[i][lo]
        if start > end + min_gap:
            gaps.append((end, start))
            groups.append([i])
        else:
            groups[-1].append(i)
        end = max(end, boxes[i][hi])
    return groups, gaps


def _join_column_bands(bands: list[list[int]], boxes: list[BBox]
                       ) -> list[tuple[list[int], tuple[float, float] | None]]:
    """Merge consecutive bands whose column gutters line up; each group keeps a common gutter."""
    out: list[tuple[list[int], list[tuple[float, float]]]] = []
    for band in bands:
        gutters = _split(band, boxes, axis=0, min_gap=COL_GAP)[1] if len(band) > 1 else []
        if out and out[-1][1] and gutters:
            common = _intersect(out[-1][1], gutters)
            if common:
                out[-1] = (out[-1][0] + band, common)
                continue
        out.append((list(band), gutters))
    return [(g, gut[0] if gut else None) for g, gut in out]


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi - lo >= COL_GAP:
                out.append((lo, hi))
    return out
