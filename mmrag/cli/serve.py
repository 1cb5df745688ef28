"""``mmrag serve``: the Gradio app on 127.0.0.1, with optional login; never a public link."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, QuietOpt, handle_errors, setup_logging


@app.command("serve")
@handle_errors
def serve_cmd(
    index: Optional[Path] = typer.Option(None, "--index", "-i", help="Index folder to serve (created on first upload)."),
    host: Optional[str] = typer.Option(
        None, "--host", help="Address to bind (default: ui.host, 127.0.0.1). A non-loopback address "
        "must be given here explicitly."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: ui.port, 7860)."),
    auth: Optional[str] = typer.Option(
        None, "--auth", help="Require a login, as user:password (or set MMRAG_AUTH)."),
    config: str = ConfigOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Serve the document-QA app: upload, ask, and see each cited region on its page."""
    from mmrag.config import load_config
    from mmrag.ui.safety import check_bind, is_loopback, resolve_auth

    setup_logging(quiet)
    cfg = load_config(config)
    bind = check_bind(host if host is not None else cfg.ui.host, explicit=host is not None)
    login = resolve_auth(auth)
    from mmrag.ui.app import collections_from, launch
    from mmrag.ui.service import AppService

    service = AppService(cfg, collections_from(cfg, index))
    where = f"http://{'[' + bind + ']' if ':' in bind else bind}:{port or cfg.ui.port}"
    notes = ["login required" if login else "no login"]
    if not is_loopback(bind):
        notes.append("reachable from other machines" + ("" if login else ": consider --auth user:password"))
    typer.echo(f"mmrag app on {where} ({'; '.join(notes)}); collections: {', '.join(service.names())}", err=True)
    launch(service, host=bind, port=port or cfg.ui.port, auth=login, block=True)
