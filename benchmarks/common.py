"""Helpers the benchmark scripts share (run as ``python benchmarks/NAME.py``, so this is importable)."""

from __future__ import annotations

import platform
from importlib import metadata


def package_versions(*packages: str, python: bool = False) -> dict[str, str | None]:
    """Installed version of each package (None when absent); the Python version first if asked."""
    out: dict[str, str | None] = {"python": platform.python_version()} if python else {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
