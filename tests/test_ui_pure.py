"""Upload checks, box drawing and bind/login rules of the app: pure functions, no browser."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mmrag.errors import ConfigError, UploadRejected
from mmrag.ui import boxes, safety, uploads

PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
ALLOWED = ["pdf", "png", "jpg", "jpeg", "tif", "tiff"]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# --- uploads -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x.pdf", "..\\..\\x.pdf", "/etc/passwd.pdf", "a/b.pdf", "C:x.pdf",
                                  "x\x00.pdf", "..", "   "])
def test_names_that_leave_their_folder_are_refused(name: str) -> None:
    with pytest.raises(UploadRejected) as e:
        uploads.check_upload(name, PDF, max_bytes=1 << 20, allowed_types=ALLOWED)
    assert "name" in str(e.value)


def test_odd_characters_become_a_plain_name() -> None:
    assert uploads.safe_name("Rapport annuel é 2023 (final).PDF") == "Rapport_annuel_e_2023_final.pdf"
    assert uploads.safe_name(".hidden.pdf") == "hidden.pdf"
    long = uploads.safe_name("a" * 500 + ".pdf")
    assert long.endswith(".pdf") and len(long) <= 120


def test_over_the_cap_is_refused_with_the_limit_in_the_message(tmp_path: Path) -> None:
    data = PDF + b"0" * 2048
    with pytest.raises(UploadRejected, match="over the"):
        uploads.check_upload("big.pdf", data, max_bytes=1024, allowed_types=ALLOWED)
    f = tmp_path / "big.pdf"
    f.write_bytes(data)
    with pytest.raises(UploadRejected, match="upload limit"):
        uploads.read_capped(f, 1024)
    assert uploads.read_capped(f, 1 << 20) == data


def test_a_png_renamed_pdf_is_refused_and_names_what_it_is() -> None:
    with pytest.raises(UploadRejected, match="content is PNG"):
        uploads.check_upload("report.pdf", PNG, max_bytes=1 << 20, allowed_types=ALLOWED)
    with pytest.raises(UploadRejected, match="not a known document format"):
        uploads.check_upload("report.pdf", b"MZ\x90\x00 windows exe", max_bytes=1 << 20, allowed_types=ALLOWED)
    with pytest.raises(UploadRejected, match="not accepted"):
        uploads.check_upload("notes.txt", b"hello", max_bytes=1 << 20, allowed_types=ALLOWED)
    with pytest.raises(UploadRejected, match="not accepted"):  # allowed by us, not by this config
        uploads.check_upload("scan.png", PNG, max_bytes=1 << 20, allowed_types=["pdf"])
    with pytest.raises(UploadRejected, match="empty"):
        uploads.check_upload("empty.pdf", b"", max_bytes=1 << 20, allowed_types=ALLOWED)


def test_real_files_pass_the_magic_check(tmp_path: Path) -> None:
    from PIL import Image

    for fmt, suffix in (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif")):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), "white").save(buf, format=fmt)
        assert uploads.check_upload(f"page.{suffix}", buf.getvalue(), max_bytes=1 << 20,
                                    allowed_types=ALLOWED) == f"page.{suffix}"
    # junk before the header is tolerated, as PDF readers do
    assert uploads.check_upload("late.pdf", b"\n\n" + PDF, max_bytes=1 << 20, allowed_types=ALLOWED) == "late.pdf"


def test_store_stays_inside_the_index_folder_and_never_overwrites(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    outside = files_under(tmp_path)
    p1 = uploads.store_upload(index, "a.pdf", PDF)
    assert p1 == (index / "uploads" / "a.pdf").resolve() and p1.read_bytes() == PDF
    assert uploads.store_upload(index, "a.pdf", PDF) == p1  # same bytes: same file
    p2 = uploads.store_upload(index, "a.pdf", PDF + b"%changed\n")
    assert p2 != p1 and p2.parent == p1.parent and p1.read_bytes() == PDF
    assert files_under(tmp_path) - outside == {p1, p2}
    with pytest.raises(UploadRejected):
        uploads.store_upload(index, "../../x.pdf", PDF)
    assert not (tmp_path / "x.pdf").exists() and not Path("x.pdf").exists()
    assert files_under(tmp_path) - outside == {p1, p2}


def test_store_refuses_an_uploads_link_that_points_outside(tmp_path: Path) -> None:
    index, elsewhere = tmp_path / "idx", tmp_path / "elsewhere"
    index.mkdir()
    elsewhere.mkdir()
    (index / "uploads").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UploadRejected, match="outside the index folder"):
        uploads.store_upload(index, "a.pdf", PDF)
    assert list(elsewhere.iterdir()) == []


# --- boxes -------------------------------------------------------------------------------------
def test_box_in_points_lands_on_the_same_pixels_at_any_dpi() -> None:
    from PIL import Image, ImageChops

    page_pt = (612.0, 792.0)
    bbox = (72.0, 144.0, 216.0, 180.0)  # 1in from left, 2in from top, 2in wide, 0.5in tall
    for dpi in (72, 144, 200):
        w, h = round(612 * dpi / 72), round(792 * dpi / 72)
        img = Image.new("RGB", (w, h), "white")
        out = boxes.draw_boxes(img, [bbox], page_size=page_pt)
        assert out.size == img.size and img.getpixel((0, 0)) == (255, 255, 255)  # original untouched
        s = dpi / 72
        x0, y0, x1, y1 = (round(v * s) for v in bbox)
        inside = out.getpixel(((x0 + x1) // 2, (y0 + y1) // 2))
        edge = out.getpixel((x0 - 1, (y0 + y1) // 2))  # the frame sits just outside the evidence
        assert inside != (255, 255, 255) and inside[0] > inside[1]  # tinted towards red
        assert edge == boxes.EVIDENCE_COLOR
        assert out.getpixel((x0 - 20, y0 - 20)) == (255, 255, 255)  # outside: paper stays white
        assert out.getpixel((x1 + 20, y1 + 20)) == (255, 255, 255)
        # the dpi route gives the same pixels as the page-size route
        assert ImageChops.difference(boxes.draw_boxes(img, [bbox], dpi=dpi), out).getbbox() is None


def test_boxes_are_clipped_and_reversed_corners_are_fixed() -> None:
    sx, sy = boxes.scale_factors((200, 100), page_size=(100.0, 50.0))
    assert (sx, sy) == (2.0, 2.0)
    assert boxes.to_pixels((90, 40, 10, 5), sx, sy, (200, 100)) == (20, 10, 180, 80)
    assert boxes.to_pixels((-10, -10, 500, 500), sx, sy, (200, 100)) == (0, 0, 199, 99)
    assert boxes.to_pixels((150, 0, 160, 10), sx, sy, (200, 100)) is None  # wholly off the page
    with pytest.raises(ValueError):
        boxes.scale_factors((10, 10))


# --- bind and login ------------------------------------------------------------------------------
def test_loopback_is_allowed_and_anything_else_needs_an_explicit_host() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"):
        assert safety.is_loopback(host)
        assert safety.check_bind(host, explicit=False) == host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        assert not safety.is_loopback(host)
        with pytest.raises(ConfigError, match=f"--host {host}"):
            safety.check_bind(host, explicit=False)
        assert safety.check_bind(host, explicit=True) == host


def test_auth_from_flag_or_environment() -> None:
    assert safety.resolve_auth("ann:s3cr:et", {}) == ("ann", "s3cr:et")
    assert safety.resolve_auth(None, {"MMRAG_AUTH": "bob:pw"}) == ("bob", "pw")
    assert safety.resolve_auth("ann:x", {"MMRAG_AUTH": "bob:pw"}) == ("ann", "x")
    assert safety.resolve_auth(None, {}) is None
    for bad in ("nopassword", ":pw", "user:"):
        with pytest.raises(ConfigError, match="user:password"):
            safety.parse_auth(bad)
