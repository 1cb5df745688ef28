"""``mmrag models``: every registered encoder, reranker and generator."""

from __future__ import annotations

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, emit, handle_errors


@app.command("models")
@handle_errors
def models_cmd(config: str = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """List every registered encoder, reranker and generator, and whether its extra is installed."""
    from mmrag import encoders, generate, rerankers

    tables = {
        "encoders": encoders.REGISTRY.describe(),
        "rerankers": rerankers.REGISTRY.describe(),
        "generators": generate.REGISTRY.describe(),
    }
    if as_json:
        emit({k: [b["name"] for b in v] for k, v in tables.items()}, True)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind, rows in tables.items():
        table = Table(title=kind, show_lines=False)
        for col in ("name", "installed", "extra", "what"):
            table.add_column(col)
        for b in rows:
            table.add_row(b["name"], "yes" if b["installed"] else "no", b["extra"] or "-", b["summary"])
        console.print(table)
    typer.echo("Missing a backend? pip install 'mmrag[EXTRA]' with the extra shown.")
