"""``mmrag verify --index DIR``: check every file of the live commit and say what is damaged."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, emit, handle_errors, setup_logging


def _human(report: dict) -> None:
    c = report["checked"]
    if report["ok"]:
        typer.echo(f"ok: commit {report['commit']}, {c['files']} files ({c['bytes'] / 1e6:.1f} MB) in "
                   f"{c['segments']} segments, doc store and BM25 match their checksums ({report['seconds']:.2f}s)")
        return
    for p in report["problems"]:
        typer.echo(f"damaged  {p['kind']:<9} {p['message']}")
    typer.echo(f"{len(report['problems'])} problems; fix with: {report['repair']}")


@app.command("verify")
@handle_errors
def verify_cmd(
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index folder to check."),
    config: str = ConfigOpt,  # accepted like every command's; the index describes itself
    as_json: bool = JsonOpt,
) -> None:
    """Check the index: checksums of every live file, SQLite integrity, ids and vector norms, coverage.

    Exit 0 when intact, 2 when something is damaged (each problem is printed, with the repair
    command: `mmrag index --index DIR --repair`, or a fresh index when the doc store is damaged).
    """
    setup_logging(True)
    from mmrag.indexes.verify import verify_index

    report = verify_index(index_dir)
    emit(report, as_json, _human)
    if not report["ok"]:
        raise typer.Exit(2)
