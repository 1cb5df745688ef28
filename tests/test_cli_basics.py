"""The command line starts fast, teaches in --help, and keeps its exit-code promise."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from typer.testing import CliRunner

from mmrag.cli import app

runner = CliRunner()


def test_help_lists_the_design_commands() -> None:
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("ingest", "index", "search", "ask", "eval", "models", "serve"):
        assert cmd in out, cmd


def test_models_json_lists_every_name() -> None:
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert set(data) == {"encoders", "rerankers", "generators"}
    assert "minilm" in data["encoders"] and "fusion" in data["rerankers"] and "extractive" in data["generators"]


def test_import_and_help_do_not_load_torch() -> None:
    code = "import sys, mmrag, mmrag.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmrag", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - t < 10  # generous: only guards against importing the ML stack

