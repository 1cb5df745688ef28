"""``mmrag index PATH... --index DIR``: ingest, encode and store; resumable; skips unchanged files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

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


def _repair(index_dir: Path, config: str, as_json: bool, quiet: bool) -> None:
    from mmrag.api import RAG
    from mmrag.errors import IndexCorrupt

    result = RAG.from_config(config, index=index_dir).repair(progress=not quiet)
    emit(result, as_json, lambda r: typer.echo(
        "nothing to repair: every file matches its record" if not r["repaired"] else
        f"repaired {r['index']}: dropped {len(r['dropped_segments'])} damaged segments, re-encoded "
        + ", ".join(f"{n} {k}" for k, n in r["reencoded"].items()) + ", rebuilt BM25"))
    if not result["after"]["ok"]:
        raise IndexCorrupt("still damaged after the repair: " + "; ".join(p["message"] for p in result["after"]["problems"][:3]))


@app.command("index")
@handle_errors
def index_cmd(
    paths: Optional[List[Path]] = typer.Argument(
        None, help="PDF/image files or folders (searched recursively); with --resume, default: the last run's."),
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index folder (created if new)."),
    workers: int = typer.Option(None, "--workers", "-w", help="Ingestion processes (default: ingest.workers)."),
    password: List[str] = typer.Option([], "--password", help="FILE=PASSWORD for an encrypted PDF (repeatable)."),
    prune: bool = typer.Option(False, "--prune", help="Remove indexed documents whose files are gone."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be added, updated or removed; write nothing."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the last run into this index after a crash or Ctrl-C (its paths and "
        "options); what it committed is not encoded again."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Documents encoded and committed together (default: index.commit_docs); a crash "
        "loses only what was not yet committed."),
    repair: bool = typer.Option(
        False, "--repair", help="Rebuild the vector segments and BM25 state that `mmrag verify` finds damaged, "
        "from the doc store (no PDF is read again); a damaged doc store needs a fresh index instead."),
    engine: Optional[str] = typer.Option(
        None, "--engine", help="Who ingests and encodes: local (process pool, the default) or ray (a Ray Data "
        "pipeline; needs the ray extra). This process writes the index either way."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="With --engine ray: the cluster to join (auto, ray://HOST:10001); default: "
        "start a local Ray with --workers CPUs."),
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Index documents for search; re-running skips files already indexed and updates changed ones."""
    setup_logging(quiet)
    from mmrag.api import ENGINES, RAG
    from mmrag.errors import ConfigError

    if repair:
        if paths or resume or prune or dry_run:
            raise ConfigError("--repair takes only --index (and --config): it mends the index, then index PATHs "
                              "in a second run")
        _repair(index_dir, config, as_json, quiet)
        return

    passwords = {}
    for item in password:
        name, sep, pw = item.partition("=")
        if not sep:
            raise ConfigError(f"--password {item!r} must be FILE=PASSWORD")
        passwords[name] = pw
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be at least 1")
    from mmrag.cli import batch

    if resume:  # the last run's paths and options, unless given again
        run = batch.resume_run(index_dir)
        opts = run["options"]
        paths = paths or [Path(p) for p in run["paths"]]
        workers, batch_size = workers or opts.get("workers"), batch_size or opts.get("batch_size")
        if engine is None:  # the engine of the run being resumed
            engine, ray_address = opts.get("engine"), ray_address or opts.get("ray_address")
        prune = prune or bool(opts.get("prune"))
        config = opts.get("config", config) if config == ConfigOpt.default else config
    if not paths:
        raise ConfigError("give the PATHs (files or folders) to index, or --resume to continue the last run")
    if batch_size is not None and batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    engine = engine or "local"
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if ray_address and engine != "ray":
        raise ConfigError("--ray-address needs --engine ray")
    if engine == "ray" and not dry_run:  # a missing extra is said before run.json is written
        from mmrag.engines.ray_engine import require_ray

        require_ray()
    from mmrag.config import load_config

    cfg = load_config(config, {"index": {"commit_docs": batch_size}} if batch_size else None)
    rag = RAG.from_config(cfg, index=index_dir)
    if dry_run:
        report = rag.index(paths, workers=workers, passwords=passwords or None, progress=False,
                           prune=prune, dry_run=True)
        emit(report, as_json, _human)
        return
    from mmrag.ingest import discover

    total = len(discover(list(paths)))
    # Open the writer once with nothing to add: a config that does not match the index fails here,
    # before run.json is written, and a new index exists before run.json goes into its folder.
    rag.index([], progress=False)
    run = batch.start_run(index_dir, list(paths), {"workers": workers, "batch_size": batch_size, "prune": prune,
                                                   "engine": engine, "ray_address": ray_address,
                                                   "config": str(Path(config).resolve()) if Path(config).is_file() else config})
    # (passwords are never written down: give them again when resuming)
    t0 = time.monotonic()
    with batch.BatchProgress(total, enabled=not quiet) as bar:
        report = rag.index(paths, workers=workers, passwords=passwords or None, progress=False,
                           prune=prune, on_document=bar, engine=engine, ray_address=ray_address)
    report["summary"] = batch.summarize(report, time.monotonic() - t0)
    batch.finish_run(index_dir, run, report)
    emit(report, as_json, _human)
    if not quiet:
        batch.print_summary(report["summary"])
