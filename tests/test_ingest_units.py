"""Pure functions of ingestion: box clustering, reading order, block splitting."""

from __future__ import annotations

import random

from mmrag.ingest.chunk import split_block
from mmrag.ingest.geometry import cluster, merge, touches
from mmrag.ingest.order import reading_order
from mmrag.types import Block


def _brute_clusters(boxes, tol):
    """Merge any two clusters whose union boxes touch until none do (quadratic, obviously right)."""
    cl = [[b, 1] for b in boxes]
    changed = True
    while changed:
        changed = False
        for i in range(len(cl)):
            for j in range(i + 1, len(cl)):
                if touches(cl[i][0], cl[j][0], tol):
                    cl[i] = [merge(cl[i][0], cl[j][0]), cl[i][1] + cl[j][1]]
                    del cl[j]
                    changed = True
                    break
            if changed:
                break
    return sorted((tuple(c[0]), c[1]) for c in cl)


def test_sweep_clustering_equals_brute_force():
    rng = random.Random(7)
    for _ in range(200):
        boxes = []
        for _ in range(rng.randint(1, 60)):
            x, y = rng.uniform(0, 300), rng.uniform(0, 300)
            boxes.append((x, y, x + rng.uniform(0, 30), y + rng.uniform(0, 30)))
        assert sorted(cluster(boxes, 3.0)) == _brute_clusters(boxes, 3.0)


def test_reading_order_reads_columns_even_when_their_gaps_line_up():
    # title, then two columns whose paragraph gaps fall at the same height, then a footer
    title = (72, 50, 540, 80)
    left = [(72, 100, 290, 200), (72, 210, 290, 300)]
    right = [(320, 100, 540, 200), (320, 210, 540, 300)]
    figure = (72, 320, 540, 420)  # full width: columns above it end before it
    left2, right2 = (72, 440, 290, 600), (320, 440, 540, 600)
    boxes = [right[1], left2, figure, left[0], title, right2, right[0], left[1]]
    order = [boxes[i] for i in reading_order(boxes)]
    assert order == [title, left[0], left[1], right[0], right[1], figure, left2, right2]


def test_long_table_block_splits_between_rows_repeating_the_header():
    md = "|Region|Sales|\n|---|---|\n" + "\n".join(f"|R{i} north east|{i} units sold|" for i in range(60))
    pieces = split_block(Block(md, (0, 0, 1, 1), "table"), 40)
    assert len(pieces) > 1
    rows = []
    for p in pieces:
        lines = p.splitlines()
        assert lines[:2] == ["|Region|Sales|", "|---|---|"] and len(p.split()) <= 40
        rows += lines[2:]
    assert rows == md.splitlines()[2:]


def test_chunks_carry_the_section_heading_across_pages():
    from mmrag.ingest import chunk_pages
    from mmrag.types import Block, Page

    p1 = Page(doc_id="d", page_number=1, width=600, height=800, blocks=[
        Block("Annual Report", (0, 0, 9, 9), "title"), Block("intro " * 150, (0, 10, 9, 19)),
        Block("more intro " * 40, (0, 20, 9, 29)),
        Block("Consolidated Statements of Operations", (0, 30, 9, 39), "title"),
        Block("| a | b |\n|---|---|\n| 1 | 2 |", (0, 40, 9, 49), "table"),
        Block("x" * 400, (0, 50, 9, 59), "title")])  # too long to be a heading
    p2 = Page(doc_id="d", page_number=2, width=600, height=800, blocks=[Block("| 3 | 4 |", (0, 0, 9, 9), "table")])
    chunks = chunk_pages([p1, p2], words=200)
    got = [(c.page_number, c.heading, c.text.split()[0][:5]) for c in chunks]
    assert got == [(1, "", "Annua"), (1, "Annual Report", "more"), (1, "", "Conso"), (1, "", "xxxxx"),
                   (2, "Consolidated Statements of Operations", "|")]
    assert chunks[1].index_text.startswith("Annual Report\nmore intro")
    assert chunks[0].index_text == chunks[0].text
