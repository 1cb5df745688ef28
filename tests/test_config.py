"""Config loading: presets parse, unknown keys are named, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.config import Config, load_config
from mmrag.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_preset_loads(preset: Path) -> None:
    cfg = load_config(preset)
    assert isinstance(cfg, Config)
    assert cfg.fields, "a preset needs at least one vector field"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("index:\n  densse: flat\n")
    with pytest.raises(ConfigError, match="index.densse"):
        load_config(bad)


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rerankr: {name: fusion}\n")
    with pytest.raises(ConfigError, match="rerankr"):
        load_config(bad)


def test_wrong_type_and_value_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("ingest:\n  dpi: high\n")
    with pytest.raises(ConfigError, match="ingest.dpi"):
        load_config(p)
    p.write_text("ingest:\n  ocr: sometimes\n")
    with pytest.raises(ConfigError, match="ocr"):
        load_config(p)


def test_component_accepts_name_shorthand_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("reranker: fusion\ngenerator:\n  name: hf-causal\n  options: {max_new_tokens: 64}\n")
    cfg = load_config(p, overrides={"search": {"k": 3}})
    assert cfg.reranker is not None and cfg.reranker.name == "fusion"
    assert cfg.generator.options == {"max_new_tokens": 64}
    assert cfg.search.k == 3


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
