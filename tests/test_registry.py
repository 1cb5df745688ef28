"""Registries: every DESIGN.md name is registered, resolves to a class, and errors are clear."""

from __future__ import annotations

import pytest

from mmrag import encoders, generate, rerankers
from mmrag.errors import ConfigError, MissingDependency, UnknownComponent
from mmrag.registry import Backend, Registry

DESIGN_NAMES = {
    "encoders": ["minilm", "sentence-transformers", "clip", "hf-clip", "siglip", "mm-embed", "colpali", "colqwen2", "dse"],
    "rerankers": ["bi-encoder", "cross-encoder", "query-likelihood", "splade", "rankgpt", "first", "insertrank",
                  "reasonrank", "rank-r1", "icr", "tildev2", "gliclass", "mm-r5", "ragllava", "fusion"],
    "generators": ["extractive", "hf-causal", "qwen-vl", "openai-compatible"],
}
TABLES = {"encoders": encoders.REGISTRY, "rerankers": rerankers.REGISTRY, "generators": generate.REGISTRY}


@pytest.mark.parametrize("kind", DESIGN_NAMES)
def test_design_names_registered(kind: str) -> None:
    # Some tests register cheap "test-*" backends of their own; the shipped table is the rest.
    assert [n for n in TABLES[kind].names() if not n.startswith("test-")] == DESIGN_NAMES[kind]


@pytest.mark.parametrize(
    "kind,name", [(k, n) for k, names in DESIGN_NAMES.items() for n in names], ids=lambda x: str(x)
)
def test_every_backend_resolves_to_a_class(kind: str, name: str) -> None:
    backend = TABLES[kind].get(name)
    if backend.missing():
        pytest.skip(f"{name} needs {backend.missing()} (extra {backend.extra})")
    cls = backend.resolve()
    base = {"encoders": encoders.Encoder, "rerankers": rerankers.Reranker, "generators": generate.Generator}[kind]
    assert isinstance(cls, type) and issubclass(cls, base)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UnknownComponent, match="minilm"):
        encoders.load("no-such-encoder")


class _Takes:
    def __init__(self, model: str = "x", batch_size: int = 1) -> None:
        self.model, self.batch_size = model, batch_size


def test_missing_dependency_names_pip_extra() -> None:
    reg = Registry("thing", [Backend("t", "tests.test_registry:_Takes", "", "vlm", ("surely_not_installed_pkg",))])
    with pytest.raises(MissingDependency, match=r"pip install 'mmrag\[vlm\]'"):
        reg.load("t")


def test_unknown_option_is_named_before_construction() -> None:
    reg = Registry("thing", [Backend("t", "tests.test_registry:_Takes", "")])
    assert reg.load("t", batch_size=4).batch_size == 4
    with pytest.raises(ConfigError, match="batchsize"):
        reg.load("t", batchsize=4)


def test_import_errors_inside_a_backend_propagate() -> None:
    reg = Registry("thing", [Backend("t", "tests._no_such_module_here:X", "")])
    with pytest.raises(ModuleNotFoundError):
        reg.load("t")
