"""Small box arithmetic on ``(x0, y0, x1, y1)`` tuples (kept in plain Python: it runs per line)."""

from __future__ import annotations

from mmrag.types import BBox


def area(b: BBox) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersection(a: BBox, b: BBox) -> float:
    """Area of the overlap of two boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    if w <= 0:
        return 0.0
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if h > 0 else 0.0


def inside_share(inner: BBox, outer: BBox) -> float:
    """Share of ``inner``'s area that lies inside ``outer`` (1.0 for a degenerate inner box inside)."""
    a = area(inner)
    if a <= 0:
        cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
        return 1.0 if outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3] else 0.0
    return intersection(inner, outer) / a


def expand(b: BBox, d: float) -> BBox:
    return (b[0] - d, b[1] - d, b[2] + d, b[3] + d)


def touches(a: BBox, b: BBox, tol: float = 0.0) -> bool:
    return a[0] - tol <= b[2] and b[0] - tol <= a[2] and a[1] - tol <= b[3] and b[1] - tol <= a[3]


def merge(a: BBox, b: BBox) -> BBox:
    # conditional expressions: several times cheaper than min()/max() calls on this hot path
    return (a[0] if a[0] < b[0] else b[0], a[1] if a[1] < b[1] else b[1],
            a[2] if a[2] > b[2] else b[2], a[3] if a[3] > b[3] else b[3])


def clip(b: BBox, width: float, height: float) -> BBox | None:
    """``b`` cut to the page; None when nothing is left."""
    x0 = b[0] if b[0] > 0.0 else 0.0
    y0 = b[1] if b[1] > 0.0 else 0.0
    x1 = b[2] if b[2] < width else width
    y1 = b[3] if b[3] < height else height
    if x1 < x0 or y1 < y0:
        return None
    return (x0, y0, x1, y1)


def rounded(b: BBox, nd: int = 2) -> BBox:
    return (round(b[0], nd), round(b[1], nd), round(b[2], nd), round(b[3], nd))


def cluster(boxes: list[BBox], tol: float) -> list[tuple[BBox, int]]:
    """Group boxes that touch (within ``tol``) into clusters: (union box, member count).

    Clusters whose union boxes touch are merged too, until none do. Each round is a sweep over
    boxes sorted by x0 that only compares open clusters (one whose right edge lies left of the
    current box can never touch a later box), so it stays near-linear for the thousands of
    paths a chart can have.
    """
    items = [(b, 1) for b in boxes]
    while True:
        merged = _sweep(items, tol)
        if len(merged) == len(items):
            return merged
        items = merged


def _sweep(items: list[tuple[BBox, int]], tol: float) -> list[tuple[BBox, int]]:
    done: list[list] = []
    open_: list[list] = []  # [x0, y0, x1, y1, count]
    for (bx0, by0, bx1, by1), n in sorted(items):
        still = []
        hit = None
        for c in open_:
            if c[2] + tol < bx0:
                done.append(c)
                continue
            if by0 - tol <= c[3] and c[1] - tol <= by1 and c[0] - tol <= bx1:
                if hit is None:
                    hit = c
                    c[0], c[1], c[2], c[3] = min(c[0], bx0), min(c[1], by0), max(c[2], bx1), max(c[3], by1)
                    c[4] += n
                else:  # the box bridges two clusters
                    hit[0], hit[1] = min(hit[0], c[0]), min(hit[1], c[1])
                    hit[2], hit[3] = max(hit[2], c[2]), max(hit[3], c[3])
                    hit[4] += c[4]
                    continue
            still.append(c)
        if hit is None:
            still.append([bx0, by0, bx1, by1, n])
        open_ = still
    return [((c[0], c[1], c[2], c[3]), c[4]) for c in done + open_]
