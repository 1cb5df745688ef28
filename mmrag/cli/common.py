"""Options and plumbing every command shares: --config, --json, --quiet, error → exit code."""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import typer

from mmrag.errors import MmragError

ConfigOpt = typer.Option(
    "configs/default.yaml", "--config", "-c",
    help="YAML preset (default: ./configs/default.yaml, else the packaged CPU preset).",
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout; logs go to stderr.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Map user errors to exit 2 with their one-line message, anything else to exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except MmragError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as e:  # internal failure: say what, keep the traceback on demand
            if logging.getLogger("mmrag").isEnabledFor(logging.DEBUG):
                traceback.print_exc()
            fail(f"internal error: {type(e).__name__}: {e} (set MMRAG_DEBUG=1 for the traceback)", 1)

    return wrapper


def emit(data: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON on stdout, or call ``human`` to print it for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=_default) + "\n")
        sys.stdout.flush()
    elif human is not None:
        human(data)
    else:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_default))


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def setup_logging(quiet: bool = False) -> None:
    import os

    level = logging.DEBUG if os.environ.get("MMRAG_DEBUG") else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
