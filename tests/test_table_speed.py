"""The fast stand-ins of ``ingest.table_speed`` against PyMuPDF's own table code, on PDFs written here."""

from __future__ import annotations

import random

import pytest

pymupdf = pytest.importorskip("pymupdf")
ptable = pytest.importorskip("pymupdf.table")

from mmrag.ingest import table_speed as ts  # noqa: E402
from mmrag.ingest.tables import find_tables  # noqa: E402
from tests.test_ingest import draw_ruled_table  # noqa: E402

ROWS = [["Segment", "Revenue 2022", "Revenue 2023", "Change"],
        ["Computing and Mobile", "1,204.5", "1,310.25", "(8.8)%"],
        ["Appliances", "98.75", "131.0", "32.7%"],
        ["Services and other", "77", "85.125", "10.4%"]]


def ruled_table_pdf(mediabox_offset: bool = False) -> bytes:
    """One page with a ruled 4x4 table (bold header, decimals), a vertical label and prose."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 70), "Revenue by segment for the last two fiscal years.", fontsize=10)
    draw_ruled_table(page, pymupdf.Rect(72, 100, 540, 220), ROWS, fontsize=9, header_font="hebo", width=0.6)
    page.insert_text((40, 400), "rotated side note", fontsize=8, rotate=90)
    page.insert_textbox(pymupdf.Rect(72, 260, 540, 400), "Totals exclude discontinued operations. " * 6,
                        fontsize=10)
    if mediabox_offset:  # a page whose coordinates do not start at (0, 0)
        page.set_mediabox(pymupdf.Rect(12, 18, 600, 780))
    return doc.tobytes()


@pytest.fixture(params=[False, True], ids=["plain", "offset-mediabox"])
def page(request):
    doc = pymupdf.open(stream=ruled_table_pdf(request.param), filetype="pdf")
    yield doc[0]
    doc.close()


def _chars_of(make, page) -> list[dict]:
    ptable._CHARS_VAR.set([]) if hasattr(ptable, "_CHARS_VAR") else ptable.CHARS.clear()
    old = bool(pymupdf.TOOLS.set_small_glyph_heights())
    pymupdf.TOOLS.set_small_glyph_heights(True)  # as find_tables sets it
    try:
        make(page)
    finally:
        pymupdf.TOOLS.set_small_glyph_heights(old)
    return list(ptable.CHARS)


def test_fast_make_chars_builds_the_same_characters_as_pymupdf(page):
    assert ts._table_module() is not None
    original = ts._ORIGINAL["make_chars"]
    theirs = _chars_of(original, page)
    ours = _chars_of(ts.fast_make_chars, page)
    assert len(theirs) > 200
    assert any(not c["upright"] for c in theirs)  # the rotated note takes the other branch
    assert ours == theirs  # every key of every character, floats to the bit


def test_char_box_index_answers_like_chars_in_rect(page):
    chars = _chars_of(ts._ORIGINAL["make_chars"], page)
    rng = random.Random(7)
    rects = []
    for c in rng.sample(chars, 60):  # rects on the exact edges of characters, and around them
        rects.append(pymupdf.Rect(c["x0"], c["y0"], c["x1"], c["y1"]))
        rects.append(pymupdf.Rect(c["x0"] + 0.01, c["y0"], c["x1"], c["y1"]))
    rects += [pymupdf.Rect(sorted(rng.uniform(0, 612) for _ in range(2))[0], rng.uniform(0, 792),
                           rng.uniform(300, 612), rng.uniform(400, 792)) for _ in range(60)]
    index = ts._CharBoxes()
    answers = [index.any_inside(chars, r) for r in rects]
    assert answers == [ptable.chars_in_rect(chars, r) for r in rects]
    assert any(answers) and not all(answers)


def test_cell_text_reads_cells_like_extract_cells(page):
    found = page.find_tables(use_layout=False)
    (tab,) = found.tables
    lines = ts.text_lines(tab.textpage)
    cells = [c for row in tab.rows for c in row.cells if c is not None]
    assert len(cells) == 16
    for cell in cells:
        assert ts.cell_text(lines, tuple(cell)) == ptable.extract_cells(tab.textpage, cell, markdown=False)


def test_swapped_table_finder_finds_the_same_grids(page):
    plain = [(tuple(t.bbox), [r.cells for r in t.rows]) for t in page.find_tables(use_layout=False).tables]
    with ts.faster_table_chars():
        assert ptable.make_chars is not ts._ORIGINAL["make_chars"]
        fast = [(tuple(t.bbox), [r.cells for r in t.rows]) for t in page.find_tables(use_layout=False).tables]
    assert fast == plain and len(plain) == 1


def test_the_swap_is_undone_even_when_the_search_fails():
    ts._table_module()
    with pytest.raises(RuntimeError):
        with ts.faster_table_chars():
            raise RuntimeError("page failed")
    assert ptable.make_chars is ts._ORIGINAL["make_chars"]
    assert ptable.chars_in_rect is ts._ORIGINAL["chars_in_rect"]


def test_table_markdown_has_every_cell_once_with_decimals_intact(page):
    ((_box, md),) = find_tables(page)
    lines = md.splitlines()
    assert lines[0] == "|Segment|Revenue 2022|Revenue 2023|Change|"  # the header row, no bold marks
    assert lines[1] == "|---|---|---|---|"
    assert lines[2:] == ["|" + "|".join(row) + "|" for row in ROWS[1:]]
