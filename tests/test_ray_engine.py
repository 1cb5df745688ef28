"""`mmrag index --engine ray`: a Ray Data pipeline on a local Ray (``ray.init(num_cpus=2)``) builds
the same index as the local process pool, with the same report, typed errors, skip-unchanged and
``--resume``.

The tests share one local Ray per module (starting Ray takes ~10 s here). The quick ones build
small reports with both engines; the slow ones resume unfinished Ray runs (one killed with
SIGKILL), index the 45 MMLongBench-Doc PDFs with both engines, and join a cluster started with
`ray start --head`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import shared_path
from tests.test_batch_index import N_DOCS, make_docs, register_encoder

# Ray starts a raylet, GCS and workers (~10-30 s on two cores): the whole module runs in `make test-slow`.
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
HASH_CFG = ("fields:\n  - {name: text, encoder: test-hash, input: chunks}\n"
            "ingest: {ocr: never, timeout_s: 600}\n"
            "generator: {name: extractive, options: {dense_weight: 0.0}}\n")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with two CPUs for the module; the engine uses it as it finds it."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs mmrag[ray]")
    from tests.hash_encoder import register

    register()
    for attempt in range(3):  # a raylet can miss Ray's start-up deadline on two loaded cores: start it again
        if ray.is_initialized():
            break
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()


def index(*args: str, code: int = 0) -> dict:
    from mmrag.cli import app

    result = CliRunner().invoke(app, ["index", *args, "--json", "--quiet"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1]) if code == 0 else {"output": result.output}


def chunks(index_dir: Path) -> dict[str, str]:
    con = sqlite3.connect(index_dir / "docstore.sqlite")
    try:
        return dict(con.execute("SELECT chunk_id, text FROM chunks"))
    finally:
        con.close()


def same_index(a: Path, b: Path, tolerance: float = 0.0) -> dict:
    from mmrag.cli.batch import compare_contents, index_contents

    same = compare_contents(index_contents(a), index_contents(b))
    assert same["same_documents"] and same["same_pages"] and same["same_vector_keys"], same
    assert same["max_abs_vector_diff"] <= tolerance, same
    assert chunks(a) == chunks(b)
    return same


def both_engines(docs: Path, tmp_path: Path) -> tuple[dict, dict, list[str]]:
    """Index ``docs`` into L (local engine) and R (Ray engine), two workers each, with the hash encoder."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(HASH_CFG)
    common = ["--config", str(cfg), "--workers", "2"]
    local = index(str(docs), "--index", str(tmp_path / "L"), *common)
    ray_run = index(str(docs), "--index", str(tmp_path / "R"), *common, "--engine", "ray")
    assert outcome(ray_run) == outcome(local)
    return local, ray_run, common


def outcome(report: dict) -> list[tuple]:
    """What a report says per document, without timings."""
    return [(d["path"], d["doc_id"], d["status"], (d["error"] or {}).get("type"), d["pages"], d.get("skipped"))
            for d in report["documents"]]


def test_ray_engine_builds_the_local_engines_index_with_typed_errors_and_skips(local_ray, tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "docs")  # 8 small reports and a broken PDF
    local, ray_run, common = both_engines(docs, tmp_path)
    assert ray_run["totals"] == local["totals"] == {"ok": N_DOCS, "error": 1, "pages": 15, "skipped": 0}
    broken = next(d for d in ray_run["documents"] if d["status"] == "error")
    assert broken["path"].endswith("broken.pdf") and broken["error"]["type"] == "CorruptDocument"
    assert json.loads((tmp_path / "R" / "report.json").read_text())["totals"] == ray_run["totals"]
    assert json.loads((tmp_path / "R" / "run.json").read_text())["options"]["engine"] == "ray"
    same_index(tmp_path / "L", tmp_path / "R")

    # skip-unchanged under Ray: one file changed, one new, the rest untouched
    import pymupdf

    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "A new report about hail in the northern valleys.")
    doc.save(docs / "report-new.pdf")
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Report 3 was revised: station 21 measured 222 millimetres.")
    doc.save(docs / "report-03.pdf")
    again = {}
    for name in ("L", "R"):
        engine = ["--engine", "ray"] if name == "R" else []
        again[name] = index(str(docs), "--index", str(tmp_path / name), *common, *engine)
    assert outcome(again["R"]) == outcome(again["L"])
    by_name = {Path(d["path"]).name: d for d in again["R"]["documents"]}
    assert by_name["report-00.pdf"]["skipped"] == "unchanged"
    assert by_name["report-03.pdf"].get("skipped") is None and by_name["report-03.pdf"]["pages"] == 1
    assert by_name["report-new.pdf"].get("skipped") is None
    assert again["R"]["totals"]["skipped"] == N_DOCS - 1
    same_index(tmp_path / "L", tmp_path / "R")
    from mmrag.cli import app

    found = CliRunner().invoke(app, ["search", "hail in the northern valleys", "--index", str(tmp_path / "R"),
                                     "--config", str(common[1]), "--json", "-k", "1"])
    assert found.exit_code == 0, found.output
    hit = json.loads(found.stdout)["hits"][0]
    assert Path(hit["path"]).name == "report-new.pdf" and hit["page"] == 1

    # --prune with nothing to ingest: a commit that only deletes, with no encoder actor to ask
    (docs / "report-new.pdf").unlink()
    for name in ("L", "R"):
        engine = ["--engine", "ray"] if name == "R" else []
        again[name] = index(str(docs), "--index", str(tmp_path / name), *common, "--prune", *engine)
    assert outcome(again["R"]) == outcome(again["L"])
    assert [Path(d["path"]).name for d in again["R"]["documents"] if d.get("skipped") == "pruned"] == ["report-new.pdf"]
    same_index(tmp_path / "L", tmp_path / "R")

    # --resume takes the engine from run.json; a finished run has nothing to resume
    out = index("--index", str(tmp_path / "R"), "--resume", code=2)
    assert "nothing to resume" in out["output"]


def test_resume_continues_an_unfinished_ray_run_with_ray(local_ray, tmp_path: Path) -> None:
    """A run that stopped part-way (here: its run.json left unfinished after indexing some of the
    files) continues with --resume: the committed documents are skipped, the rest go through Ray."""
    docs = make_docs(tmp_path / "docs")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(HASH_CFG)
    first = sorted(docs.glob("report-0[0-2].pdf"))
    index(*map(str, first), "--index", str(tmp_path / "R"), "--config", str(cfg), "--engine", "ray")
    from mmrag.cli import batch

    batch.start_run(tmp_path / "R", [str(docs)], {"workers": 2, "batch_size": None, "prune": False,
                                                  "engine": "ray", "ray_address": None, "config": str(cfg)})
    resumed = index("--index", str(tmp_path / "R"), "--resume")
    assert [Path(d["path"]).name for d in resumed["documents"] if d.get("skipped") == "unchanged"] == \
        [p.name for p in first]
    assert resumed["totals"]["ok"] == N_DOCS and resumed["totals"]["error"] == 1
    assert json.loads((tmp_path / "R" / "run.json").read_text())["finished"] is not None
    index(str(docs), "--index", str(tmp_path / "L"), "--config", str(cfg))
    same_index(tmp_path / "L", tmp_path / "R")


def test_engine_options_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = make_docs(tmp_path / "docs")
    out = index(str(docs), "--index", str(tmp_path / "I"), "--ray-address", "auto", code=2)
    assert "--engine ray" in out["output"]
    out = index(str(docs), "--index", str(tmp_path / "I"), "--engine", "spark", code=2)
    assert "local, ray" in out["output"]
    # without Ray installed, the error names the pip command (ray hidden from the import system)
    monkeypatch.setitem(sys.modules, "ray", None)
    from mmrag.engines.ray_engine import require_ray
    from mmrag.errors import MissingDependency

    with pytest.raises(MissingDependency, match=r"pip install 'mmrag\[ray\]'"):
        require_ray()
    out = index(str(docs), "--index", str(tmp_path / "I"), "--engine", "ray", code=2)
    assert "pip install 'mmrag[ray]'" in out["output"] and not (tmp_path / "I" / "run.json").exists()


def test_ray_and_local_engines_index_mmlongbench_alike(local_ray, tmp_path: Path) -> None:
    """The 45 MMLongBench-Doc PDFs: same documents, pages, chunks and vectors with either engine."""
    local, ray_run, _ = both_engines(shared_path("mmlongbench-doc-subset", "documents"), tmp_path)
    assert local["totals"]["ok"] == 45 and local["totals"]["pages"] > 1000
    same = same_index(tmp_path / "L", tmp_path / "R", tolerance=1e-6)
    assert same["pages"] == local["totals"]["pages"]


def test_kill_minus_9_of_a_ray_run_then_resume(local_ray, tmp_path: Path) -> None:
    """A `--engine ray` run (its own local Ray) killed with SIGKILL after its first commit resumes
    (with Ray, from run.json) to the index a clean local run builds."""
    from mmrag.cli.batch import committed_documents

    register_encoder()
    docs = make_docs(tmp_path / "docs")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(HASH_CFG.replace("test-hash", "test-slow-hash") + "index: {commit_seconds: 3600}\n")
    common = ["--config", str(cfg), "--workers", "2", "--batch-size", "2"]
    code = ("import sys; from tests.test_batch_index import register_encoder; register_encoder(); "
            "from mmrag.cli import main; sys.argv = ['mmrag', 'index', *sys.argv[1:]]; main()")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(tmp_path / "B.log", "w") as err:
        child = subprocess.Popen([sys.executable, "-c", code, str(docs), "--index", str(tmp_path / "B"), *common,
                                  "--engine", "ray", "--quiet"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 300
    while committed_documents(tmp_path / "B") == 0 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, (tmp_path / "B.log").read_text()
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    done_at_kill = committed_documents(tmp_path / "B")
    assert 1 <= done_at_kill < N_DOCS

    resumed = index("--index", str(tmp_path / "B"), "--resume")
    assert sum(1 for d in resumed["documents"] if d.get("skipped") == "unchanged") == done_at_kill
    assert resumed["totals"]["ok"] == N_DOCS and resumed["totals"]["error"] == 1
    index(str(docs), "--index", str(tmp_path / "A"), *common)
    same_index(tmp_path / "A", tmp_path / "B")


def test_ray_address_joins_a_running_cluster(tmp_path: Path) -> None:
    """`--ray-address` joins a cluster started apart (`ray start --head`, one node here) and leaves it
    running; the driver is a separate `mmrag index` process, as on a real cluster."""
    pytest.importorskip("ray", reason="the Ray engine needs mmrag[ray]")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from tests.hash_encoder import register

    register()
    import uuid

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Ray's token authentication, as a cluster uses it: the head and every driver share the token
    env.update(PYTHONPATH=str(ROOT), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex)
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "false",
                             "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and head.poll() is None:  # until the head's GCS listens
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address", f"127.0.0.1:{port}"],
                       env=env, capture_output=True, timeout=120)  # and its node has registered
        docs = make_docs(tmp_path / "docs")
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(HASH_CFG)
        code = ("import sys; from tests.hash_encoder import register; register(); "
                "from mmrag.cli import main; sys.argv = ['mmrag', 'index', *sys.argv[1:]]; main()")
        args = ["--index", str(tmp_path / "R"), "--config", str(cfg), "--engine", "ray",
                "--ray-address", f"127.0.0.1:{port}", "--workers", "2", "--json", "--quiet"]
        # three reports, then the whole folder: the second run goes through the same, still running cluster
        for paths in (sorted(map(str, docs.glob("report-0[0-2].pdf"))), [str(docs)]):
            out = subprocess.run([sys.executable, "-c", code, *paths, *args], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=300)
            assert out.returncode == 0, out.stderr[-3000:]
            assert head.poll() is None, "mmrag index stopped a cluster it did not start"
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["totals"] == {"ok": N_DOCS, "error": 1, "pages": 15 - 6, "skipped": 3}
        index(str(docs), "--index", str(tmp_path / "L"), "--config", str(cfg))
        same_index(tmp_path / "L", tmp_path / "R")
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops the processes it started
        head.wait(60)
        time.sleep(2)
        try:
            os.killpg(head.pid, signal.SIGKILL)  # any of them (same process group) still there
        except ProcessLookupError:
            pass
