"""`mmrag serve` refuses unsafe settings before it loads anything, and says what to do."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mmrag.cli import app


def run(*args: str):
    return CliRunner().invoke(app, ["serve", *args])


def test_a_non_loopback_host_from_the_config_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "open.yaml"
    cfg.write_text("ui:\n  host: 0.0.0.0\n")
    result = run("--index", str(tmp_path / "idx"), "--config", str(cfg))
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in result.output and "pass --host 0.0.0.0 explicitly" in result.output
    assert not (tmp_path / "idx").exists()


def test_a_bad_login_or_no_collection_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MMRAG_AUTH", raising=False)
    result = run("--index", str(tmp_path / "idx"), "--auth", "admin")
    assert result.exit_code == 2 and "user:password" in result.output
    monkeypatch.setenv("MMRAG_AUTH", "admin:")
    result = run("--index", str(tmp_path / "idx"))
    assert result.exit_code == 2 and "user:password" in result.output
    monkeypatch.delenv("MMRAG_AUTH")
    result = run()
    assert result.exit_code == 2 and "pass --index DIR or set ui.collections" in result.output
    assert "Traceback" not in result.output
