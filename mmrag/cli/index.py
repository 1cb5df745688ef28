"""``mmrag index PATH... --index DIR``: ingest, encode and store; resumable; skips unchanged files."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, QuietOpt, emit, handle_errors, setup_logging


def _human(report: dict) -> None:
    for d in report["documents"]:
        if d["status"] == "error":
            typer.echo(f"error    {d['path']}: {d['error']['type']}: {d['error']['message']}", err=True)
        elif d.get("action"):
            typer.echo(f"{d['action']:<8} {d['path']}")
        elif d.get("skipped"):
            typer.echo(f"skipped  {d['path']} ({d['skipped']})")
        else:
            typer.echo(f"indexed  {d['path']} ({d['pages']} pages, {d['seconds']:.1f}s)")
    t = report["totals"]
    typer.echo(f"{t['ok']} ok ({t['skipped']} unchanged or skipped), {t['error']} failed, {t['pages']} pages indexed")


@app.command("index")
@handle_errors
def index_cmd(
    paths: List[Path] = typer.Argument(..., help="PDF/image files or folders (searched recursively)."),
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index folder (created if new)."),
    workers: int = typer.Option(None, "--workers", "-w", help="Ingestion processes (default: ingest.workers)."),
    password: List[str] = typer.Option([], "--password", help="FILE=PASSWORD for an encrypted PDF (repeatable)."),
    prune: bool = typer.Option(False, "--prune", help="Remove indexed documents whose files are gone."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be added, updated or removed; write nothing."),
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Index documents for search; re-running skips files already indexed and updates changed ones."""
    setup_logging(quiet)
    from mmrag.api import RAG
    from mmrag.errors import ConfigError

    passwords = {}
    for item in password:
        name, sep, pw = item.partition("=")
        if not sep:
            raise ConfigError(f"--password {item!r} must be FILE=PASSWORD")
        passwords[name] = pw
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be at least 1")
    rag = RAG.from_config(config, index=index_dir)
    report = rag.index(paths, workers=workers, passwords=passwords or None, progress=not quiet,
                       prune=prune, dry_run=dry_run)
    emit(report, as_json, _human)
