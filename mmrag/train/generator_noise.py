"""``mmrag train generator --noise-injection``: RagLLaVA's noise-injected training of the answerer.

Two kinds of noise, so the answerer learns to answer from the right page and to ignore the rest:
- data level: each question's evidence pages are mixed with ``noise_pages`` irrelevant pages
  (the evidence of other questions) in a random order, in the prompt the generator itself builds
  (``hf-causal`` for a causal LM, ``qwen-vl`` for a Qwen-VL model);
- token level: Gaussian noise of std ``token_noise`` on the visual input (the page pixels that
  become visual tokens) of a Qwen-VL model, or on the input token embeddings of a text-only causal
  LM (it has no visual tokens), during training only.

Training is TRL's ``SFTTrainer`` (loss on the answer only). Data: a JSONL file of
``{"question", "answer", "contexts": [{"doc_id", "page", "text", "image"?}]}`` (image paths
relative to the file). The saved folder loads as the generator's ``model:``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError
from mmrag.train import llm_common as common
from mmrag.train import trl_run

OPTIONS = {
    "lr": 1e-5,
    "kind": "auto",  # causal | qwen-vl | auto (qwen-vl when the model folder has a processor with images)
    "noise_pages": 2,  # irrelevant pages mixed into each question's contexts
    "token_noise": 0.1,  # std of the Gaussian noise on pixels (Qwen-VL) or input embeddings (causal LM)
    "shuffle": True,  # the evidence page at a random place among the noise
    "min_pixels": 4 * 28 * 28,
    "max_pixels": 256 * 28 * 28,
}


@dataclass
class QAExample:
    question: str
    answer: str
    contexts: list[Any]  # mmrag.types.Hit: the evidence pages


def load_qa(path: str | Path) -> list[QAExample]:
    """Read the QA JSONL (see the module docstring); a clear error for a malformed row."""
    from mmrag.types import Hit

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no QA file at {path}: give a JSONL of {{question, answer, contexts}}")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            hits = []
            for c in row["contexts"]:
                image = c.get("image")
                hits.append(Hit(doc_id=str(c["doc_id"]), path=str(c.get("path", c["doc_id"])), page=int(c.get("page", 1)),
                                score=1.0, text=str(c.get("text", "")),
                                image_path=str(path.parent / image) if image else None))
            out.append(QAExample(str(row["question"]), str(row["answer"]), hits))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}:{n}: expected {{question, answer, contexts: [{{doc_id, page, text}}]}} "
                              f"({type(e).__name__}: {e})") from None
    if not out:
        raise ConfigError(f"{path}: no training questions")
    return out


def mix_noise(examples: list[QAExample], k: int, rng: random.Random, shuffle: bool = True) -> list[list[Any]]:
    """Each example's evidence plus ``k`` pages drawn from the other examples' evidence (data-level noise)."""
    pool = [(i, h) for i, e in enumerate(examples) for h in e.contexts]
    mixed = []
    for i, e in enumerate(examples):
        others = [h for j, h in pool if j != i and h.page_id not in {g.page_id for g in e.contexts}]
        pages = list(e.contexts) + rng.sample(others, min(k, len(others)))
        if shuffle:
            rng.shuffle(pages)
        mixed.append(pages)
    return mixed


def gaussian_noise(x: Any, std: float, generator: Any = None) -> Any:
    """``x`` plus Gaussian noise of standard deviation ``std`` (same shape, dtype and device)."""
    import torch

    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return x + (std * noise).to(x.dtype)


def add_token_noise(model: Any, std: float, visual: bool) -> Any:
    """Register the token-level noise on ``model`` (active in training mode only); returns the hook handle.
    Qwen-VL: on the pixels entering the vision tower; causal LM: on the input embeddings' output."""
    if std <= 0:
        return None
    if visual:
        tower = getattr(getattr(model, "model", model), "visual", None) or getattr(model, "visual", None)
        if tower is None:
            raise ConfigError("token noise: this vision-language model has no .visual tower; use token_noise 0")

        def pre(module: Any, args: tuple, kwargs: dict) -> Any:
            if not module.training:
                return None
            if args:
                return (gaussian_noise(args[0], std),) + tuple(args[1:]), kwargs
            key = "hidden_states" if "hidden_states" in kwargs else "pixel_values"
            return args, {**kwargs, key: gaussian_noise(kwargs[key], std)}

        return tower.register_forward_pre_hook(pre, with_kwargs=True)
    embed = model.get_input_embeddings()

    def post(module: Any, args: tuple, output: Any) -> Any:
        return gaussian_noise(output, std) if module.training else output

    return embed.register_forward_hook(post)


def _is_vlm(model: str | None) -> bool:
    if not model or not Path(model).is_dir():
        return bool(model) and "-vl" in str(model).lower()
    return (Path(model) / "processor_config.json").is_file() or (Path(model) / "preprocessor_config.json").is_file()


def rows_causal(examples: list[QAExample], mixed: list[list[Any]], tok: Any) -> list[dict]:
    """Prompt-completion rows in the ``hf-causal`` generator's own chat prompt."""
    from mmrag.generate.hf_causal import HFCausalGenerator

    gen = HFCausalGenerator(model=None, tokenizer=tok, contexts=len(mixed[0]) if mixed else 3)
    return [{"prompt": gen.build_messages(e.question, pages), "completion": [{"role": "assistant", "content": e.answer}]}
            for e, pages in zip(examples, mixed)]


def rows_vlm(examples: list[QAExample], mixed: list[list[Any]], opts: dict) -> list[dict]:
    """Rows in the ``qwen-vl`` generator's own request (page images in the ``images`` column)."""
    from mmrag.generate.qwen_vl import QwenVLGenerator
    from mmrag.train.mm_r5 import placeholders
    from mmrag.vlm import message_images

    gen = QwenVLGenerator(model=str(opts["model"]), min_pixels=int(opts["min_pixels"]),
                          max_pixels=int(opts["max_pixels"]))
    out = []
    for e, pages in zip(examples, mixed):
        messages = gen.messages(e.question, pages)
        out.append({"prompt": placeholders(messages), "images": message_images(messages),
                    "completion": [{"role": "assistant", "content": [{"type": "text", "text": e.answer}]}]})
    return out


def train(examples: list[QAExample], out: Path, options: dict) -> dict:
    """Noise-injected SFT of the answerer; save a folder the generator loads by ``model:``."""
    common.require_trl()
    opts = common.merged(options, OPTIONS)
    started = time.perf_counter()
    from transformers import set_seed

    kind = opts["kind"] if opts["kind"] != "auto" else ("qwen-vl" if _is_vlm(opts["model"]) else "causal")
    if kind not in ("causal", "qwen-vl"):
        raise ConfigError(f"kind must be causal, qwen-vl or auto, got {kind!r}")
    set_seed(int(opts["seed"]))
    rng = random.Random(int(opts["seed"]))
    mixed = mix_noise(examples, int(opts["noise_pages"]), rng, bool(opts["shuffle"]))
    if kind == "qwen-vl":
        from mmrag.train.mm_r5 import load_vlm

        model, processor = load_vlm(str(opts["model"]), opts)
        data = rows_vlm(examples, mixed, opts)
    else:
        model, processor = common.load_causal(opts["model"], opts)
        data = rows_causal(examples, mixed, processor)
    hook = add_token_noise(model, float(opts["token_noise"]), visual=kind == "qwen-vl")
    try:
        model, loss = trl_run.sft(model, processor, data, Path(out), opts)
    finally:
        if hook is not None:
            hook.remove()
    result = common.summary("noise-injection", opts, started, len(examples), len(data), kind=kind, loss=loss,
                            generator="qwen-vl" if kind == "qwen-vl" else "hf-causal")
    return common.save(model, processor, Path(out), result)
