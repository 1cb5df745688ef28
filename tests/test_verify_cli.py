"""`mmrag verify`, `mmrag index --repair`, and bad query or filter input: exit 2 with one clear line.

The argv cases run the real command in a subprocess: Python turns bytes that are not UTF-8 into
lone surrogates only on the way in from a real argv. Property tests (hypothesis) feed arbitrary
text, surrogates and NUL included, to the API's and the CLI's query and filter parsers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmrag.api import RAG
from mmrag.cli import app
from mmrag.cli.search import parse_filters
from mmrag.errors import QueryError
from mmrag.indexes import integrity
from tests.indexes.helpers import build, make_doc, word_doc
from tests.test_api import write_config

ROOT = Path(__file__).resolve().parents[1]
CLI = "from tests.hash_encoder import register; register(); from mmrag.cli import main; main()"
runner = CliRunner()

# any code point, lone surrogates and NUL included
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
                   max_size=40)


@pytest.fixture()
def built(tmp_path):
    docs = [word_doc(i) for i in range(4)] + [make_doc(42, [["The warranty lasts 24 months."]])]
    build(tmp_path / "ix", docs).close()
    integrity.forget_verified()
    return tmp_path / "ix", write_config(tmp_path)


def run_cli(*args: str | bytes) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=ROOT, env=env, capture_output=True, timeout=120)


def last_line(p: subprocess.CompletedProcess) -> str:
    return p.stderr.decode("utf-8", "replace").strip().splitlines()[-1]


def test_query_with_lone_surrogate_in_argv_exits_2(built):
    ix, cfg = built
    p = run_cli("search", b"\xed\xa0\x80", "--index", str(ix), "--config", str(cfg))
    assert p.returncode == 2, p.stderr
    assert last_line(p).startswith("error: the query is not valid Unicode") and b"internal error" not in p.stderr


@pytest.mark.parametrize("value,words", [("1e99", "not a page number"), ("9" * 30, "out of range"),
                                         ("7-3", "is empty")])
def test_out_of_range_page_filter_exits_2(built, value, words):
    ix, cfg = built
    r = runner.invoke(app, ["search", "report", "--index", str(ix), "--config", str(cfg), "--filter", f"page={value}"])
    assert r.exit_code == 2 and words in r.output and "internal error" not in r.output


def test_verify_exit_codes_and_json(built):
    ix, _ = built
    r = runner.invoke(app, ["verify", "--index", str(ix), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["ok"] and report["problems"] == [] and report["commit"] == 1
    vectors = next(ix.glob("segments/seg-*/vectors.npy"))
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0x40
    vectors.write_bytes(bytes(data))
    r = runner.invoke(app, ["verify", "--index", str(ix), "--json"])
    assert r.exit_code == 2
    report = json.loads(r.stdout)
    assert [(p["file"], p["kind"]) for p in report["problems"]] == [(str(vectors), "checksum")]
    assert report["repair"] == f"mmrag index --index {ix} --repair"
    r = runner.invoke(app, ["verify", "--index", str(ix.parent / "nothing")])
    assert r.exit_code == 2 and "no mmrag index" in r.output


def test_damaged_segment_search_exits_2_then_repair_restores_the_results(built):
    ix, cfg = built
    args = ["search", "warranty months report", "--index", str(ix), "--config", str(cfg), "--json"]
    before = json.loads(runner.invoke(app, args).stdout)["hits"]
    vectors = next(ix.glob("segments/seg-*/vectors.npy"))
    data = bytearray(vectors.read_bytes())
    data[200:] = bytes(b ^ 0xFF for b in data[200:])
    vectors.write_bytes(bytes(data))
    integrity.forget_verified()
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "fails its checksum" in r.output and "--repair" in r.output
    r = runner.invoke(app, ["index", "--index", str(ix), "--repair", "--config", str(cfg), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["repaired"] and out["after"]["ok"] and out["reencoded"] == {"text": 17}  # one segment held all 17 chunks
    integrity.forget_verified()
    assert json.loads(runner.invoke(app, args).stdout)["hits"] == before
    r = runner.invoke(app, ["index", "--index", str(ix), "--repair", "--config", str(cfg)])
    assert r.exit_code == 0 and "nothing to repair" in r.output


def test_truncated_docstore_exits_2_with_the_reindex_advice(built):
    ix, cfg = built
    db = ix / "docstore.sqlite"
    db.write_bytes(db.read_bytes()[:4096])
    integrity.forget_verified()
    for args in (["search", "report", "--index", str(ix), "--config", str(cfg)],
                 ["verify", "--index", str(ix)],
                 ["index", "--index", str(ix), "--repair", "--config", str(cfg)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "index the documents again" in r.output and "internal error" not in r.output


def test_repair_refuses_paths(built):
    ix, cfg = built
    r = runner.invoke(app, ["index", str(ix), "--index", str(ix), "--repair", "--config", str(cfg)])
    assert r.exit_code == 2 and "--repair takes only --index" in r.output


@pytest.fixture(scope="module")
def shared_rag(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prop")
    build(tmp / "ix", [word_doc(i) for i in range(3)]).close()
    rag = RAG.from_config(write_config(tmp), index=tmp / "ix")
    yield rag
    rag.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=ANY_TEXT)
def test_api_search_takes_any_text_or_says_query_error(shared_rag, query):
    try:
        hits = shared_rag.search(query, k=3)
    except QueryError as e:
        assert str(e)
    else:
        assert isinstance(hits, list) and len(hits) <= 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["page", "doc_id", "path", "metadata"]), value=ANY_TEXT, meta_key=ANY_TEXT)
def test_api_filters_take_any_text_or_say_query_error(shared_rag, key, value, meta_key):
    filters = {"metadata": {meta_key: value}} if key == "metadata" else {key: value}
    try:
        hits = shared_rag.search("report", k=3, filters=filters)
    except QueryError as e:
        assert str(e)
    else:
        assert isinstance(hits, list)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(ANY_TEXT, max_size=4))
def test_cli_filter_parser_takes_any_text_or_says_query_error(items):
    try:
        filters = parse_filters(items)
    except QueryError as e:
        assert "--filter" in str(e)
    else:
        assert filters is None or isinstance(filters, dict)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=ANY_TEXT.filter(lambda s: not s.startswith("-")), value=ANY_TEXT)
def test_cli_search_exits_0_or_2_on_any_text(shared_rag, query, value):
    ix = shared_rag.index_dir
    cfg = ix.parent / "cfg.yaml"
    r = runner.invoke(app, ["search", query, "--index", str(ix), "--config", str(cfg), "--filter", f"page={value}",
                            "--json"])
    assert r.exit_code in (0, 2), r.output
    assert "internal error" not in r.output
