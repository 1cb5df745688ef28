"""``mmrag ingest PATH... --out DIR``: PDFs/images → pages as JSONL + DIR/report.json (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, QuietOpt, emit, handle_errors, setup_logging


@app.command("ingest")
@handle_errors
def ingest_cmd(
    paths: list[Path] = typer.Argument(..., help="PDF/PNG/JPEG/TIFF files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: pages/<doc_id>.jsonl, documents/, report.json."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Worker processes (default: config ingest.workers)."),
    ocr: str = typer.Option(None, "--ocr", help="auto | always | never (default: config ingest.ocr)."),
    password: str = typer.Option(None, "--password", help="Password for encrypted PDFs."),
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Extract layout text, blocks, tables and OCR from documents; documents already in --out are skipped."""
    from mmrag.config import load_config
    from mmrag.errors import ConfigError
    from mmrag.ingest.run import ingest_to_folder

    setup_logging(quiet)
    overrides: dict = {}
    if ocr is not None:
        if ocr not in ("auto", "always", "never"):
            raise ConfigError("--ocr must be auto, always or never")
        overrides["ocr"] = ocr
    if password is not None:
        overrides["password"] = password
    cfg = load_config(config, {"ingest": overrides} if overrides else None)
    report = ingest_to_folder(paths, out, cfg.ingest, workers=workers or cfg.ingest.workers,
                              progress=not quiet)
    emit(report, as_json, _human)


def _human(report: dict) -> None:
    t = report["totals"]
    for d in report["documents"]:
        if d["status"] == "error":
            typer.echo(f"error  {d['path']}: {d['error']['type']}: {d['error']['message']}", err=True)
    typer.echo(f"{t['ok']} ok, {t['error']} failed, {t['pages']} pages "
               f"({t.get('skipped', 0)} already in the folder) → {report['out']}")
