"""The ``mmrag`` command line: a thin layer over the Python API (see DESIGN.md's table).

Each command lives in its own module under ``mmrag.cli`` and registers itself on ``app``.
Exit codes: 0 success, 2 usage or input error (one line on stderr), 1 internal failure.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

app = typer.Typer(
    name="mmrag",
    help=(
        "Multimodal document retrieval: index PDFs as layout text + page images, search them, "
        "rerank with text or vision models, and answer with citations.\n\n"
        "Quick start:\n\n"
        "  mmrag index reports/ --index my.idx\n\n"
        "  mmrag search 'net revenue 2023' --index my.idx -k 5\n\n"
        "  mmrag ask 'What was net revenue in 2023?' --index my.idx"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.callback()
def _root() -> None:
    """mmrag: index PDFs, search, rerank and ask (see `mmrag COMMAND --help`)."""


# Command modules, in --help order. Each registers its commands on `app` when imported.
COMMAND_MODULES = ("ingest", "index", "verify", "search", "evaluate", "models", "serve", "train")


def _register() -> None:
    for name in COMMAND_MODULES:
        module = f"mmrag.cli.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def main() -> None:
    """Entry point of the ``mmrag`` script."""
    _register()
    app()


_register()
