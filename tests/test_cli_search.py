"""`mmrag search` / `mmrag ask` / `mmrag index`: JSON shapes, exit codes, nothing written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mmrag.cli import app
from tests.indexes.helpers import build, make_doc, word_doc
from tests.test_api import write_config

runner = CliRunner()


@pytest.fixture()
def built(tmp_path):
    docs = [word_doc(i) for i in range(4)] + [make_doc(42, [["The warranty lasts 24 months."]])]
    build(tmp_path / "ix", docs)
    return tmp_path / "ix", write_config(tmp_path)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_search_json_shape(built):
    ix, cfg = built
    r = invoke("search", "warranty months", "--index", str(ix), "--config", str(cfg), "--json", "-k", "2")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert list(data) == ["hits"] and len(data["hits"]) == 2
    top = data["hits"][0]
    assert set(top) == {"doc_id", "path", "page", "score", "snippet", "bbox"}
    assert (top["doc_id"], top["page"], top["snippet"]) == ("d42", 1, "The warranty lasts 24 months.")
    r = invoke("search", "report", "--index", str(ix), "--config", str(cfg), "--json", "--filter", "doc_id=d1",
               "--filter", "page=2")
    assert [(h["doc_id"], h["page"]) for h in json.loads(r.stdout)["hits"]] == [("d1", 2)]


def test_ask_json_shape(built):
    pytest.importorskip("mmrag.generate.extractive")
    ix, cfg = built
    r = invoke("ask", "How long is the warranty?", "--index", str(ix), "--config", str(cfg), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data) == {"answer", "citations", "contexts"}
    assert "24 months" in data["answer"] and data["citations"][0]["doc_id"] == "d42"


@pytest.mark.parametrize("query", ["", "   ", "q" * 100_000])
def test_bad_query_exits_2(built, query):
    ix, cfg = built
    before = snapshot(ix)
    for cmd in ("search", "ask"):
        r = invoke(cmd, query, "--index", str(ix), "--config", str(cfg))
        assert r.exit_code == 2 and "query" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert snapshot(ix) == before


def test_missing_index_exits_2_and_creates_nothing(tmp_path):
    cfg = write_config(tmp_path)
    r = invoke("search", "hello", "--index", str(tmp_path / "nope"), "--config", str(cfg))
    assert r.exit_code == 2 and "mmrag index" in r.stderr
    assert not (tmp_path / "nope").exists()


def test_other_encoder_exits_2_and_writes_nothing(built, tmp_path):
    ix, _ = built
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"fields": [{"name": "text", "encoder": "test-hash", "options": {"dim": 16}}]}))
    before = snapshot(ix)
    for args in (["search", "hello"], ["index", str(tmp_path / "cfg.yaml")]):
        r = invoke(*args, "--index", str(ix), "--config", str(other))
        assert r.exit_code == 2 and "built with" in r.stderr, r.output
    assert snapshot(ix) == before


def test_unknown_config_key_exits_2(built, tmp_path):
    ix, _ = built
    bad = tmp_path / "bad.yaml"
    bad.write_text("index:\n  fusoin: rrf\n")
    before = snapshot(ix)
    for args in (["search", "hello"], ["index", str(tmp_path)]):
        r = invoke(*args, "--index", str(ix), "--config", str(bad))
        assert r.exit_code == 2 and "index.fusoin" in r.stderr
    assert snapshot(ix) == before
