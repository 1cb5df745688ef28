"""`mmrag ask` end to end with `ragllava` + `qwen-vl` (tiny random Qwen2.5-VL saved to folders):
index a real PDF, rerank its rendered pages, answer, and cite real pages and boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("qwen_vl_utils")
pymupdf = pytest.importorskip("pymupdf")

from mmrag.cli import app  # noqa: E402
from tests.tiny import save_tiny_qwen_vl  # noqa: E402

PAGES = [
    ("Annual report 2023", "Net revenue rose to 5.2 million dollars in 2023, driven by exports."),
    ("Governance", "Jane Doe was appointed chief executive officer in March."),
    ("Staff", "Headcount by region: Europe 120, Asia 80, Americas 45."),
]
PIX = {"min_pixels": 28 * 28, "max_pixels": 28 * 28 * 8}


def _pdf(path: Path) -> Path:
    doc = pymupdf.open()
    for title, body in PAGES:
        page = doc.new_page()
        page.insert_text((72, 72), title, fontsize=18)
        page.insert_textbox(pymupdf.Rect(72, 100, 520, 300), body, fontsize=11)
    doc.save(path)
    return path


def _config(tmp: Path, model: str, min_score: float) -> Path:
    cfg = {
        "reranker": {"name": "ragllava", "options": {"model": model, "min_score": min_score, "relative": 0.0,
                                                     "top_k": 2, **PIX}},
        "generator": {"name": "qwen-vl", "options": {"model": model, "max_new_tokens": 16,
                                                     "min_confidence": min_score, **PIX}},
        "search": {"k": 3, "rerank_depth": 3},
        "ask": {"contexts": 3},
    }
    path = tmp / f"cfg-{min_score}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_mmrag_ask_with_ragllava_and_qwen_vl_cites_real_pages_and_boxes(
        qwen_vl_tokenizer_dir: Path, tmp_path: Path) -> None:
    model = str(save_tiny_qwen_vl(qwen_vl_tokenizer_dir, tmp_path / "tiny-qwen25vl", version="2.5"))
    pdf = _pdf(tmp_path / "report.pdf")
    runner = CliRunner()
    open_cfg = _config(tmp_path, model, 0.0)  # thresholds open: pages reach the generator
    res = runner.invoke(app, ["index", str(pdf), "--index", str(tmp_path / "ix"), "--config", str(open_cfg),
                              "--json", "--quiet"])
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, ["ask", "Who is the chief executive?", "--index", str(tmp_path / "ix"),
                              "--config", str(open_cfg), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["answer"] and data["citations"]
    # ragllava's top_k=2 lets at most two of the three contexts through to the generator
    assert 1 <= len(data["contexts"]) <= 2
    doc = pymupdf.open(pdf)
    for c in data["citations"]:
        assert Path(c["path"]).resolve() == pdf.resolve() and 1 <= c["page"] <= len(PAGES)
        x0, y0, x1, y1 = c["bbox"]
        page = doc[c["page"] - 1]
        assert 0 <= x0 < x1 <= page.rect.width and 0 <= y0 < y1 <= page.rect.height
        # the box holds text of that very page (read back by MuPDF, not by our code)
        boxed = page.get_text("text", clip=pymupdf.Rect(x0, y0, x1, y1)).split()
        assert boxed and set(boxed) <= set(" ".join(PAGES[c["page"] - 1]).split())

    # a threshold no random model clears: nothing passes, the answer says so and cites nothing
    res = runner.invoke(app, ["ask", "Who is the chief executive?", "--index", str(tmp_path / "ix"),
                              "--config", str(_config(tmp_path, model, 0.999)), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["answer"] == "The documents do not contain the answer." and data["citations"] == []
