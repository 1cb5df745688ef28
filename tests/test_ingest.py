"""Ingestion on PDFs written here with PyMuPDF: text order, block kinds, boxes, OCR, rotation."""

from __future__ import annotations

import hashlib
import io

import pytest

pymupdf = pytest.importorskip("pymupdf")

from mmrag.config import IngestConfig  # noqa: E402
from mmrag.ingest import chunk_pages, load_document  # noqa: E402
from mmrag.ingest.render import render_page  # noqa: E402

LOREM = ("Retrieval systems read documents page by page and keep the layout of every block so that "
         "answers can cite the region they come from. ")
NO_OCR = IngestConfig(ocr="never")


def _save(doc) -> bytes:
    data = doc.tobytes()
    doc.close()
    return data


def two_column_pdf() -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(pymupdf.Rect(72, 60, 540, 100), "Annual Report on Layout", fontsize=22, fontname="hebo")
    left = [f"LEFT{i} " + LOREM * 2 for i in range(1, 3)]
    right = [f"RIGHT{i} " + LOREM * 2 for i in range(1, 3)]
    for i, text in enumerate(left):
        page.insert_textbox(pymupdf.Rect(72, 130 + i * 200, 296, 320 + i * 200), text, fontsize=10)
    for i, text in enumerate(right):
        page.insert_textbox(pymupdf.Rect(316, 130 + i * 200, 540, 320 + i * 200), text, fontsize=10)
    return _save(doc)


def table_pdf() -> tuple[bytes, pymupdf.Rect]:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "Results by region are given in the table below for each year.", fontsize=10)
    grid = pymupdf.Rect(72, 120, 472, 220)
    rows = [["Region", "2022", "2023"], ["North", "125", "140"], ["South", "98", "131"], ["East", "77", "85"]]
    draw_ruled_table(page, grid, rows)
    page.insert_text((72, 240), "Table 1: Sales per region in units.", fontsize=9)
    return _save(doc), grid


def draw_ruled_table(page, grid, rows: list[list[str]], fontsize: float = 10, header_font: str = "helv",
                     width: float = 0.8) -> None:
    """Rules around every cell of ``grid`` and the cell texts of ``rows`` (first row in ``header_font``)."""
    cw, rh = grid.width / len(rows[0]), grid.height / len(rows)
    for r in range(len(rows) + 1):
        page.draw_line((grid.x0, grid.y0 + r * rh), (grid.x1, grid.y0 + r * rh), width=width)
    for c in range(len(rows[0]) + 1):
        page.draw_line((grid.x0 + c * cw, grid.y0), (grid.x0 + c * cw, grid.y1), width=width)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            page.insert_text((grid.x0 + c * cw + 6, grid.y0 + r * rh + 16), cell, fontsize=fontsize,
                             fontname=header_font if r == 0 else "helv")


def chart_pdf() -> tuple[bytes, pymupdf.Rect]:
    """A bar chart drawn as vector paths with axis labels, and a caption under it."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(pymupdf.Rect(72, 60, 540, 140), LOREM * 3, fontsize=10)
    area = pymupdf.Rect(100, 200, 400, 400)
    page.draw_line(area.bl, area.br)
    page.draw_line(area.bl, area.tl)
    for i, h in enumerate([60, 120, 90, 150, 40, 170]):
        page.draw_rect(pymupdf.Rect(area.x0 + 20 + i * 45, area.y1 - h, area.x0 + 50 + i * 45, area.y1),
                       color=(0, 0, 0), fill=(0.3, 0.5, 0.8))
        page.insert_text((area.x0 + 22 + i * 45, area.y1 + 12), f"Q{i + 1}", fontsize=8)
    page.insert_text((72, 440), "Figure 2: Quarterly volume of indexed pages.", fontsize=9)
    return _save(doc), area


def text_image(text: str, size: tuple[int, int] = (900, 200), font_px: int = 56):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 60), text, fill="black", font=ImageFont.load_default(size=font_px))
    return img


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def scanned_pdf() -> bytes:
    """A page that is one picture of text, placed at a known box: only OCR can read it."""
    doc = pymupdf.open()
    page = doc.new_page(width=450, height=100)
    page.insert_image(pymupdf.Rect(0, 0, 450, 100), stream=png_bytes(text_image("INVOICE 4711 PAID")))
    return _save(doc)


def test_two_columns_read_column_by_column_with_title_first():
    doc = load_document(two_column_pdf(), config=NO_OCR)
    page = doc.pages[0]
    text = page.text
    order = [text.index(k) for k in ("Annual Report", "LEFT1", "LEFT2", "RIGHT1", "RIGHT2")]
    assert order == sorted(order), text[:300]
    assert page.blocks[0].kind == "title" and page.blocks[0].text == "Annual Report on Layout"
    # every block lies in the column it was written into
    for b in page.blocks:
        if b.text.startswith("LEFT"):
            assert 70 <= b.bbox[0] and b.bbox[2] <= 298
        if b.text.startswith("RIGHT"):
            assert 314 <= b.bbox[0] and b.bbox[2] <= 542
    assert doc.title == "Annual Report on Layout"


def test_table_becomes_one_markdown_block_with_its_grid_box():
    data, grid = table_pdf()
    page = load_document(data, config=NO_OCR).pages[0]
    tables = [b for b in page.blocks if b.kind == "table"]
    assert len(tables) == 1
    t = tables[0]
    assert all(abs(a - b) < 3 for a, b in zip(t.bbox, tuple(grid)))
    lines = t.text.splitlines()
    assert lines[0].replace(" ", "") == "|Region|2022|2023|"
    assert "|South|98|131|" in t.text.replace(" ", "")
    # the cell text is not repeated as loose text blocks, and the caption is a caption
    assert not any(b.kind == "text" and b.text.strip() == "North" for b in page.blocks)
    assert [b.kind for b in page.blocks if b.text.startswith("Table 1")] == ["caption"]
    kinds = [b.kind for b in page.blocks]
    assert kinds.index("table") < kinds.index("caption")


def test_tables_off_keeps_cells_as_text():
    data, _ = table_pdf()
    page = load_document(data, config=IngestConfig(ocr="never", tables=False)).pages[0]
    assert "table" not in {b.kind for b in page.blocks}
    assert "South" in page.text


def test_vector_chart_is_a_figure_holding_its_labels():
    data, area = chart_pdf()
    page = load_document(data, config=NO_OCR).pages[0]
    figures = [b for b in page.blocks if b.kind == "figure"]
    assert len(figures) == 1
    f = figures[0]
    assert f.bbox[0] <= area.x0 + 1 and f.bbox[2] >= area.x1 - 1 and f.bbox[1] <= area.y0 + 30
    assert f.bbox[3] >= area.y1 + 8  # grew to hold the axis labels under the chart
    assert all(f"Q{i}" in f.text for i in range(1, 7))
    assert [b.kind for b in page.blocks if b.text.startswith("Figure 2")] == ["caption"]


def test_image_only_page_is_read_by_ocr_with_boxes_in_points():
    pytest.importorskip("rapidocr")
    doc = load_document(scanned_pdf(), config=IngestConfig(ocr="auto"))
    page = doc.pages[0]
    assert page.ocr
    ocr_blocks = [b for b in page.blocks if b.source == "ocr"]
    assert ocr_blocks and "INVOICE 4711 PAID" in " ".join(b.text for b in ocr_blocks).upper()
    # the text was drawn at pixels (40, 60) of a 900x200 image placed on a 450x100 pt page: 0.5 pt/px
    x0, y0, x1, y1 = ocr_blocks[0].bbox
    assert 10 <= x0 <= 30 and 20 <= y0 <= 40 and x1 <= 450 and y1 <= 70
    # the same page without OCR has no text at all
    assert load_document(scanned_pdf(), config=NO_OCR).pages[0].text == ""


def test_png_input_is_one_page_and_renders():
    pytest.importorskip("rapidocr")
    img = text_image("HELLO PNG 2024", size=(800, 160))
    data = png_bytes(img)
    doc = load_document(data, name="scan.png")
    assert doc.page_count == 1 and doc.path == "scan.png"
    page = doc.pages[0]
    assert "HELLO PNG 2024" in page.text.upper()
    rendered = page.image()
    assert rendered.mode == "RGB"
    assert abs(rendered.width / rendered.height - 800 / 160) < 0.05


def test_rotated_page_boxes_match_the_rendered_image():
    doc = pymupdf.open()
    page = doc.new_page(width=400, height=600)
    page.insert_text((60, 100), "Rotated page marker text", fontsize=14)
    page.set_rotation(90)
    data = _save(doc)
    p = load_document(data, config=NO_OCR).pages[0]
    assert (p.width, p.height) == (600, 400) and p.rotation == 90
    (block,) = p.blocks
    assert block.text == "Rotated page marker text"
    img = p.image(dpi=72)
    assert img.size == (600, 400)
    gray = img.convert("L")
    x0, y0, x1, y1 = (int(v) for v in block.bbox)
    inside = [gray.getpixel((x, y)) for x in range(x0, x1) for y in range(y0, y1)]
    assert min(inside) < 100  # the text is drawn inside the box
    outside = [gray.getpixel((x, y)) for x in range(0, 600, 3) for y in range(0, 400, 3)
               if not (x0 - 3 <= x <= x1 + 3 and y0 - 3 <= y <= y1 + 3)]
    assert min(outside) > 200  # and nowhere else


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_image_pass_matches_the_public_bboxlog_on_rotated_pages(rotation):
    """The image-only device must give the boxes PyMuPDF's bbox log gives, mapped to the display."""
    from mmrag.ingest.page import IMAGE_OPS, _drawn_images, _transform

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=600)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 100, 80), False)
    pix.clear_with(90)
    page.insert_image(pymupdf.Rect(50, 60, 250, 220), pixmap=pix)
    page.insert_image(pymupdf.Rect(20, 400, 120, 480), pixmap=pix)
    page.set_rotation(rotation)
    t = _transform(page)
    expected = [t(b) if t else tuple(b) for op, b in page.get_bboxlog() if op in IMAGE_OPS]
    got, largest = _drawn_images(page)
    assert len(got) == len(expected) == 2 and largest == 80
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=0.01)


def test_only_pages_that_draw_a_sizeable_image_report_image_boxes():
    """Icons under 64 px a side are not figures; a page with a bigger one reports all drawn images,
    also when the image is drawn from inherited resources or inside a form XObject."""
    from mmrag.ingest.page import image_boxes

    doc = pymupdf.open()
    icon = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 32, 32), False)
    photo = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 120, 90), False)
    source = pymupdf.open()
    source.new_page().insert_image(pymupdf.Rect(100, 300, 400, 500), pixmap=photo)
    small_only = doc.new_page()
    small_only.insert_image(pymupdf.Rect(50, 50, 300, 300), pixmap=icon)
    both = doc.new_page()
    both.insert_image(pymupdf.Rect(50, 50, 80, 80), pixmap=icon)
    both.insert_image(pymupdf.Rect(100, 300, 400, 500), pixmap=photo)
    text_only = doc.new_page()
    text_only.insert_text((72, 72), "no pictures here")
    formed = doc.new_page()
    formed.show_pdf_page(pymupdf.Rect(0, 0, 306, 396), source, 0)  # as a form XObject, at half size
    small_only, both, text_only, formed = doc  # page objects reloaded: adding pages orphans earlier ones
    assert image_boxes(small_only, True, None) == []
    assert len(image_boxes(both, True, None)) == 2
    assert image_boxes(text_only, True, None) == []
    boxes = image_boxes(formed, True, None)
    drawn = [b for op, b in formed.get_bboxlog() if op in ("fill-image", "fill-imgmask")]
    assert len(boxes) == len(drawn) == 1 and boxes[0] == pytest.approx(tuple(drawn[0]), abs=0.01)
    assert 0 <= boxes[0][0] < boxes[0][2] <= 306 and 0 <= boxes[0][1] < boxes[0][3] <= 396


def test_empty_page_has_no_blocks_and_no_error():
    doc = pymupdf.open()
    doc.new_page()
    page = doc.new_page()
    page.insert_text((72, 72), "second page text", fontsize=11)
    d = load_document(_save(doc), config=NO_OCR)
    assert d.page_count == 2
    assert d.pages[0].blocks == [] and d.pages[0].text == "" and d.pages[0].error is None
    assert d.pages[1].text == "second page text"


def test_doc_id_content_hash_and_bytes_render(tmp_path, monkeypatch):
    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    data = two_column_pdf()
    d = load_document(data, config=NO_OCR)
    assert d.doc_id == hashlib.sha256(data).hexdigest()[:16]
    assert d.path == "<bytes>"
    page = d.pages[0]
    assert page.page_id == f"{d.doc_id}#1" and len(page.content_hash) == 64
    assert page.source_path.startswith(str(tmp_path / "cache"))
    img = page.image()
    assert img.size == (1224, 1584)  # 612x792 pt at the default 144 DPI
    # the same bytes from a file give the same ids; a changed page a different content hash
    f = tmp_path / "doc.pdf"
    f.write_bytes(data)
    d2 = load_document(f, config=NO_OCR)
    assert d2.doc_id == d.doc_id and d2.pages[0].content_hash == page.content_hash
    assert load_document(table_pdf()[0], config=NO_OCR).pages[0].content_hash != page.content_hash
    assert render_page(f, 1, dpi=72).size == (612, 792)


def test_chunks_never_cross_pages_and_titles_open_chunks():
    doc = pymupdf.open()
    for n in range(2):
        page = doc.new_page(width=612, height=792)
        page.insert_text((72, 80), f"Section {n + 1} Heading", fontsize=20, fontname="hebo")
        page.insert_textbox(pymupdf.Rect(72, 100, 540, 700), LOREM * 12, fontsize=10)
    d = load_document(_save(doc), config=NO_OCR)
    chunks = chunk_pages(d.pages, words=120)
    assert {c.page_number for c in chunks} == {1, 2}
    for c in chunks:
        page = d.pages[c.page_number - 1]
        assert c.chunk_id.startswith(f"{d.doc_id}#{c.page_number}#")
        assert c.text in page.text or all(part in page.text for part in c.text.split("\n"))
        assert len(c.text.split()) <= 120 + 5
    firsts = [c for c in chunks if c.chunk_id.endswith("#0")]
    assert [c.text.split("\n")[0] for c in firsts] == ["Section 1 Heading", "Section 2 Heading"]
    assert all(c.kinds[:2] == ("title", "text") for c in firsts)
    # the chunk box is the union of its blocks
    title, body = d.pages[0].blocks[0], d.pages[0].blocks[1]
    assert firsts[0].bbox[1] == title.bbox[1] and firsts[0].bbox[3] <= body.bbox[3]


def test_table_without_rules_is_found_from_aligned_cells():
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "Consolidated statement of operations, in millions.", fontsize=10)
    rows = [("", "2015", "2016", "2017"), ("Net product sales", "79,268", "94,665", "118,573"),
            ("Net service sales", "27,738", "41,322", "59,293"), ("Total net sales", "107,006", "135,987", "177,866"),
            ("Cost of sales", "71,651", "88,265", "111,934")]
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell:
                page.insert_text((72 + (c and 200 + (c - 1) * 90), 120 + r * 14), cell, fontsize=9)
    page.insert_text((72, 220), LOREM * 1, fontsize=10)
    p = load_document(_save(doc), config=NO_OCR).pages[0]
    (table,) = [b for b in p.blocks if b.kind == "table"]
    lines = table.text.replace(" ", "").splitlines()
    assert lines[0] == "||2015|2016|2017|" and lines[1] == "|---|---|---|---|"
    assert lines[2:] == ["|Netproductsales|79,268|94,665|118,573|", "|Netservicesales|27,738|41,322|59,293|",
                         "|Totalnetsales|107,006|135,987|177,866|", "|Costofsales|71,651|88,265|111,934|"]
    assert 70 <= table.bbox[0] <= 73 and 105 <= table.bbox[1] <= 112 and 175 <= table.bbox[3] <= 180
    assert "Consolidated statement" in p.text and "Retrieval systems" in p.text
    assert not any(b.kind == "table" for b in load_document(two_column_pdf(), config=NO_OCR).pages[0].blocks)


def test_auto_ocr_without_rapidocr_keeps_layout_text_and_warns(monkeypatch, caplog):
    import mmrag.ingest.ocr as ocr
    import mmrag.ingest.page as page_mod

    monkeypatch.setattr(ocr, "available", lambda: False)
    page_mod._warn_no_ocr.cache_clear()  # warned once per process
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "short", fontsize=11)  # under 50 chars: would need OCR
    with caplog.at_level("WARNING", logger="mmrag.ingest"):
        page = load_document(_save(doc), config=IngestConfig(ocr="auto")).pages[0]
    assert page.text == "short" and not page.ocr and page.error is None
    assert "pip install 'mmrag[ocr]'" in caplog.text


def _statement_pdf(rows, x_value=(400, 480), fontsize=9, pitch=13.5, top=120) -> bytes:
    """Rows of (label, values...) set like a financial statement: labels at the left, values
    right-aligned in columns, no rules."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "Consolidated balance sheets, in millions.", fontsize=10)
    font = pymupdf.Font("helv")
    for r, (label, *values) in enumerate(rows):
        y = top + r * pitch
        page.insert_text((72, y), label, fontsize=fontsize)
        for x, v in zip(x_value, values):
            page.insert_text((x - font.text_length(v, fontsize), y), v, fontsize=fontsize)
    page.insert_text((72, top + len(rows) * pitch + 60), LOREM * 1, fontsize=10)
    return _save(doc)


def test_label_rows_between_rows_of_amounts_stay_in_the_table():
    rows = [("", "2016", "2017"), ("Current assets:",), ("Cash and cash equivalents", "19,334", "20,522"),
            ("Inventories", "11,461", "16,047"), ("Total current assets", "45,781", "60,197"),
            ("Stockholders' equity:",), ("Preferred stock, $0.01 par value:",), ("Authorized shares - 500",),
            ("Common stock", "5", "5"), ("Retained earnings", "4,916", "8,636"),
            ("Total stockholders' equity", "19,285", "27,709")]
    p = load_document(_statement_pdf(rows), config=NO_OCR).pages[0]
    (table,) = [b for b in p.blocks if b.kind == "table"]
    assert "Current assets:" in table.text and "Authorized shares - 500" in table.text
    assert "|Total stockholders' equity|19,285|27,709|" in table.text
    assert table.bbox[1] < 120 and table.bbox[3] > 120 + 10 * 13.5 - 2
    assert "Consolidated balance sheets" in p.text and "Retrieval systems" in p.text


def test_label_and_value_rows_make_a_two_column_table():
    rows = [("Gross capital lease obligations", "$ 14,811"), ("Less imputed interest", "(534)"),
            ("Present value of net minimum lease payments", "14,277"),
            ("Less current portion of capital lease obligations", "(5,839)"),
            ("Total long-term capital lease obligations", "$ 8,438")]
    p = load_document(_statement_pdf(rows, x_value=(480,)), config=NO_OCR).pages[0]
    (table,) = [b for b in p.blocks if b.kind == "table"]
    assert table.text.splitlines()[2:] == [
        "|Less imputed interest|(534)|", "|Present value of net minimum lease payments|14,277|",
        "|Less current portion of capital lease obligations|(5,839)|",
        "|Total long-term capital lease obligations|$ 8,438|"]


def test_numbers_beside_text_that_do_not_line_up_are_no_table():
    """Prose lines that end beside chart labels or equation numbers: no value column."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    for r, (line, value, x) in enumerate([("the government is doing at least fairly well", "95", 330),
                                          ("down from earlier this year, and fewer now", "85", 510),
                                          ("say that the threat is handled well today", "82", 400),
                                          ("with the numbers given at the ends of lines", "(3)", 520),
                                          ("and more text to finish the paragraph off", "(4)", 520),
                                          ("as the last line of the paragraph ends here", "(5)", 520)]):
        page.insert_text((72, 120 + r * 14), line, fontsize=9)
        page.insert_text((x, 120 + r * 14), value, fontsize=9)
    p = load_document(_save(doc), config=NO_OCR).pages[0]
    assert not any(b.kind == "table" for b in p.blocks)


def test_text_column_beside_a_table_stays_out_of_it():
    """Lines of a paragraph set beside a table, two between each pair of rows, are no label rows."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    prose = ("On the other hand other subgroups of older adults in particular those eighty years of age "
             "or older those with low household incomes and those who have not attended college tend to "
             "be much more removed from online life than the rest of the population").split()
    rows = [("Total", "59", "47"), ("65-69", "74", "65"), ("70-74", "68", "55"), ("75-79", "47", "34"),
            ("80+", "37", "21"), ("Some college", "69", "57"), ("Graduate", "87", "76")]
    for r, (label, a, b) in enumerate(rows):
        y = 121 + r * 21
        page.insert_text((250, y), label, fontsize=9)
        page.insert_text((400, y), a, fontsize=9)
        page.insert_text((480, y), b, fontsize=9)
        for n, dy in enumerate((7, 14)):  # the text column's lines fall between the rows
            page.insert_text((40, y + dy), " ".join(prose[(2 * r + n) * 3:(2 * r + n) * 3 + 3]), fontsize=6)
    p = load_document(_save(doc), config=NO_OCR).pages[0]
    assert all(t.bbox[0] >= 240 and "online" not in t.text for t in p.blocks if t.kind == "table")
    assert "online" in p.text and "Graduate" in p.text


@pytest.mark.parametrize("options", [{}, {"Global.use_cls": True}], ids=["per-page", "rapidocr-per-line"])
def test_upside_down_scan_is_turned_and_its_boxes_turned_back(options):
    """OCR decides orientation per page from its widest lines; ``ocr_options`` can hand it back
    to rapidocr's per-line angle classifier, which turns the lines in place."""
    pytest.importorskip("rapidocr")
    doc = pymupdf.open()
    page = doc.new_page(width=450, height=100)
    turned = text_image("INVOICE 4711 PAID").rotate(180)
    page.insert_image(pymupdf.Rect(0, 0, 450, 100), stream=png_bytes(turned))
    read = load_document(_save(doc), config=IngestConfig(ocr="auto", ocr_options=options)).pages[0]
    ocr_blocks = [b for b in read.blocks if b.source == "ocr"]
    assert ocr_blocks and "INVOICE 4711 PAID" in " ".join(b.text for b in ocr_blocks).upper()
    # drawn at pixels (40, 60) of a 900x200 image, then turned: it now ends 40 px from the right
    # edge and 60 px from the bottom, i.e. x1 <= 430 pt and y1 <= 80 pt, far from the top left
    x0, y0, x1, y1 = ocr_blocks[0].bbox
    assert x0 >= 150 and 380 <= x1 <= 432 and y0 >= 30 and y1 <= 82


def test_ocr_hands_rapidocr_the_channels_in_its_order(monkeypatch):
    """rapidocr converts a PIL image from RGB to BGR itself but takes an array as BGR: the page
    image (RGB) must reach it as BGR, as when the PIL image was passed."""
    pytest.importorskip("rapidocr")
    from PIL import Image

    import mmrag.ingest.ocr as ocr

    seen = []

    class Engine:
        use_cls = True

        def __call__(self, pixels):
            seen.append(pixels)
            return None

    monkeypatch.setattr(ocr, "engine", lambda options=None: Engine())
    ocr.ocr_lines(Image.new("RGB", (40, 20), (255, 0, 0)), 1.0)
    assert tuple(seen[0][0, 0]) == (0, 0, 255)  # red in BGR
