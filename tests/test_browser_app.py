"""The app in a real browser: `mmrag serve` on 127.0.0.1, headless Chromium through Playwright.

Uploads a PDF the test makes, waits for indexing, asks, checks the answer and that the cited
page image appears, and saves a screenshot (path printed; MMRAG_ARTIFACTS overrides the folder).
Default CPU preset: MiniLM + extractive.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_ui_service import QUESTION, make_pdf, require_ingest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MMRAG_ARTIFACTS", ROOT / "tests" / "artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mmrag serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mmrag serve did not answer on {url} within {timeout:.0f}s")


def wait_for_text(page, selector: str, text: str, error_selector: str, timeout: float = 180.0) -> None:
    """Wait until ``selector`` shows ``text``; fail at once with the page's message if an error shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in page.locator(selector).inner_text():
            return
        error = page.locator(error_selector).inner_text().strip()
        if error and ("failed" in error or "refused" in error or "Not indexed" in error or "rror" in error):
            raise AssertionError(f"the page shows an error: {error}")
        time.sleep(0.5)
    raise AssertionError(f"{selector} did not show {text!r} within {timeout:.0f}s")


@pytest.fixture
def server(tmp_path: Path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright")
    pytest.importorskip("gradio")
    require_ingest()
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--index", str(tmp_path / "idx"), "--port", str(port),
         "--config", str(ROOT / "configs" / "default.yaml")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_upload_ask_and_see_the_cited_region(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    pdf = make_pdf(tmp_path / "lakeside-report.pdf")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "browser-app.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            page.locator("#upload input[type=file]").set_input_files(str(pdf))
            # Gradio's file list shows the name as stem + extension, which some builds space apart
            expect(page.locator("#upload")).to_contain_text(re.compile(r"lakeside-report\s*\.pdf"), timeout=30_000)
            page.locator("#index-button").click()
            wait_for_text(page, "#upload-status", "Indexed 1 new document(s), 2 page(s)", "#upload-status")
            expect(page.locator("#documents")).to_contain_text("lakeside-report.pdf")

            page.locator("#question textarea").fill(QUESTION)
            page.locator("#ask-button").click()
            wait_for_text(page, "#chat", "1,234 meteors", "#answer-status")
            expect(page.locator("#chat")).to_contain_text("[1] lakeside-report.pdf · page 2")
            expect(page.locator("#citations")).to_contain_text("[1] lakeside-report.pdf · page 2")
            expect(page.locator("#cited-caption")).to_contain_text("page 2 — the evidence is boxed in red")
            cited = page.locator("#cited-page img")
            expect(cited).to_be_visible(timeout=60_000)
            size = cited.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size[0] > 600 and size[1] > size[0]  # a rendered portrait page, not an icon
            expect(page.locator("#retrieved img").first).to_be_visible()
            expect(page.locator("#scores")).to_contain_text("first-stage score")
            assert "Traceback" not in page.content()
            page.wait_for_function(  # every event done: no component still shows "processing"
                "() => !document.body.innerText.includes('processing')", timeout=60_000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
