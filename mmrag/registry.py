"""Explicit name → backend tables (no guessing from model names), imported lazily.

A backend is loaded only when asked for. Before importing it we check that the packages it
declares are installed and, if not, raise `MissingDependency` with the pip command; import
errors *inside* an installed backend are real bugs and propagate untouched.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

from mmrag.errors import ConfigError, MissingDependency, UnknownComponent


@dataclass(frozen=True)
class Backend:
    name: str
    target: str  # "package.module:ClassName"
    summary: str
    extra: str | None = None  # pip extra that installs what it needs
    requires: tuple[str, ...] = ()  # importable module names checked before import

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def resolve(self) -> type:
        module_name, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)


class Registry:
    """A table of backends of one kind (encoder, reranker, generator)."""

    def __init__(self, kind: str, backends: list[Backend]):
        self.kind = kind
        self._backends = {b.name: b for b in backends}

    def names(self) -> list[str]:
        return list(self._backends)

    def register(self, backend: Backend) -> None:
        """Add a backend (plugins, and cheap test backends registered by a test only)."""
        self._backends[backend.name] = backend

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            raise UnknownComponent(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self._backends)}"
            ) from None

    def describe(self) -> list[dict]:
        return [
            {"name": b.name, "summary": b.summary, "extra": b.extra, "installed": not b.missing()}
            for b in self._backends.values()
        ]

    def load(self, name: str, **options: Any) -> Any:
        """Instantiate backend ``name`` with ``options`` (its constructor's keyword arguments)."""
        backend = self.get(name)
        missing = backend.missing()
        if missing:
            extra = f"pip install 'mmrag[{backend.extra}]'" if backend.extra else "pip install " + " ".join(missing)
            raise MissingDependency(
                f"{self.kind} '{name}' needs {', '.join(missing)} which is not installed: {extra}"
            )
        cls = backend.resolve()
        check_options(cls, options, f"{self.kind} '{name}'")
        return cls(**options)


def accepted_options(cls: type) -> list[str] | None:
    """The keyword options ``cls(...)`` takes, following ``**kwargs`` that a constructor hands on
    to its base class's; None when some constructor takes any keyword."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.name not in names
                  and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def check_options(cls: type, options: dict, what: str) -> None:
    """Raise ConfigError naming the option a constructor does not take."""
    allowed = accepted_options(cls)
    if allowed is None:
        return
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ConfigError(f"{what} has no option {unknown[0]!r}; it takes: {', '.join(allowed) or 'none'}")
