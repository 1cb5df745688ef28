"""Item 4 of issue 5: index a PDF with the tiny `clip` and `colqwen2` models through the CLI and search it.

The page ranking the CLI returns is checked against an independent computation: the same
tiny encoder run on the pages rendered at its DPI, scored by cosine (clip) or an einsum MaxSim
(colqwen2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("open_clip")
pytest.importorskip("fitz")

from mmrag import encoders  # noqa: E402
from mmrag.cli import app  # noqa: E402
from tests.tiny import tiny_colqwen2, tiny_open_clip_config  # noqa: E402

runner = CliRunner()
COLOURS = [(1, 0, 0), (0, 0.6, 0), (0, 0, 1)]
TEXTS = ["Quarterly revenue grew in the north region.", "The warranty lasts 24 months.", "Blue skies and weather."]


def make_pdf(path: Path) -> Path:
    import fitz

    doc = fitz.open()
    for colour, text in zip(COLOURS, TEXTS):
        page = doc.new_page(width=300, height=300)
        page.draw_rect(fitz.Rect(40, 40, 260, 200), color=colour, fill=colour)
        page.insert_text((40, 240), text, fontsize=11)
    doc.save(path)
    return path


def write_config(tmp: Path, field: dict) -> Path:
    from tests.hash_encoder import register

    register()
    cfg = {"fields": [{"name": "text", "encoder": "test-hash", "input": "chunks", "options": {"dim": 32}}, field],
           "index": {"sparse": False}, "ingest": {"ocr": "never"},
           "generator": {"name": "extractive", "options": {"encoder": None}}}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def index_and_search(tmp: Path, cfg: Path, pdf: Path, query: str) -> list[dict]:
    r = runner.invoke(app, ["index", str(pdf), "--index", str(tmp / "ix"), "--config", str(cfg), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["totals"]["ok"] == 1 and report["totals"]["pages"] == 3
    r = runner.invoke(app, ["search", query, "--index", str(tmp / "ix"), "--config", str(cfg), "--json", "-k", "3"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["hits"]


def field_ranking(tmp: Path, cfg: Path, query: str, field: str) -> list[tuple[int, float]]:
    """Per-field scores of the API's hits: the image field really took part in the search."""
    from mmrag.api import RAG

    hits = RAG.from_config(cfg, index=tmp / "ix").search(query, k=3)
    assert all(field in h.scores for h in hits), [h.scores for h in hits]
    return sorted(((h.page, h.scores[field]) for h in hits), key=lambda x: -x[1])


def rendered_pages(pdf: Path, dpi: int):
    from mmrag.types import Page

    return [Page("doc", n, 300, 300, source_path=str(pdf)) for n in (1, 2, 3)], dpi


def test_clip_field_indexes_and_searches_a_pdf_through_the_cli(tmp_path):
    arch = tiny_open_clip_config(tmp_path / "arch")
    random_init = encoders.load("clip", model="mmrag-tiny-clip", pretrained=None, model_config=str(arch), device="cpu")
    random_init.save_trained(tmp_path / "tiny-clip")  # fixed weights the index and the check both load
    options = {"model": str(tmp_path / "tiny-clip"), "device": "cpu", "dpi": 48}
    cfg = write_config(tmp_path, {"name": "image", "encoder": "clip", "input": "pages", "options": options})
    pdf = make_pdf(tmp_path / "report.pdf")
    hits = index_and_search(tmp_path, cfg, pdf, "a red box")
    assert sorted(h["page"] for h in hits) == [1, 2, 3] and all(h["path"].endswith("report.pdf") for h in hits)
    # independent: the same encoder on the pages rendered at its dpi, cosine with the query
    enc = encoders.load("clip", **options, progress=False)
    pages, _ = rendered_pages(pdf, 48)
    sims = enc.encode_page(pages) @ enc.encode_query("a red box")[0]
    got = field_ranking(tmp_path, cfg, "a red box", "image")
    assert [p for p, _ in got] == list(np.argsort(-sims) + 1)


@pytest.mark.slow  # builds the Qwen-VL tokenizer from the SmolLM2 GGUF
def test_colqwen2_multivector_field_through_the_cli(tmp_path, qwen_vl_tokenizer_dir):
    model = tiny_colqwen2(qwen_vl_tokenizer_dir, tmp_path / "colqwen2")
    options = {"model": str(model), "device": "cpu", "dpi": 36}
    cfg = write_config(tmp_path, {"name": "patches", "encoder": "colqwen2", "input": "pages", "options": options})
    pdf = make_pdf(tmp_path / "report.pdf")
    hits = index_and_search(tmp_path, cfg, pdf, "warranty months")
    assert sorted(h["page"] for h in hits) == [1, 2, 3]
    assert any((p.name.startswith("seg-patches") for p in (tmp_path / "ix").rglob("*")))
    enc = encoders.load("colqwen2", **options, progress=False)
    pages, _ = rendered_pages(pdf, 36)
    (q,) = enc.encode_query("warranty months")
    maxsim = [np.einsum("qd,td->qt", q, m.astype(np.float16).astype(np.float32)).max(1).sum()
              for m in enc.encode_page(pages)]
    got = field_ranking(tmp_path, cfg, "warranty months", "patches")
    assert [p for p, _ in got] == list(np.argsort(-np.array(maxsim)) + 1)
    np.testing.assert_allclose(sorted(s for _, s in got), sorted(maxsim), rtol=2e-3)
