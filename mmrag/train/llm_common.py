"""What the LLM/VLM training recipes share: options with defaults, model loading, LoRA, trainer
arguments, windows of a ``RankingExample``, saving a folder the rerankers load by ``model:``.

torch, transformers, TRL and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from mmrag.errors import ConfigError, MissingDependency, ModelNotFound
from mmrag.train.ranking_types import RankingExample

# Keys every recipe understands; a recipe adds its own (and may change a default).
COMMON = {
    "model": None,  # HF id or folder; None = the bundled SmolLM2-135M-Instruct
    "epochs": 1.0,
    "max_steps": -1,  # > 0 overrides epochs
    "lr": 1e-5,
    "batch_size": 1,
    "grad_accum": 1,
    "seed": 0,
    "lora_r": 0,  # 0 = full fine-tuning; > 0 = LoRA adapters (merged into the saved weights)
    "lora_alpha": None,  # default 2 * lora_r
    "lora_dropout": 0.05,
    "bf16": None,  # None = bf16 on a GPU, float32 on CPU
    "warmup": 0,  # warm-up steps, or a fraction of the run when below 1
    "scheduler": "linear",  # learning-rate schedule (transformers names: linear, cosine, constant, ...)
    "progress": True,
}

TRAIN_PIP = "pip install 'mmrag[train]'  (torch, transformers, trl, peft)"


def merged(options: dict | None, own: dict) -> dict:
    """``options`` over the defaults (COMMON, then the recipe's ``own``); unknown keys are an error."""
    defaults = {**COMMON, **own}
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}; this method takes: {', '.join(sorted(defaults))}")
    out = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    if float(out["lr"]) <= 0 or int(out["batch_size"]) < 1 or int(out["grad_accum"]) < 1:
        raise ConfigError("lr must be > 0, batch_size and grad_accum >= 1")
    if int(out["max_steps"]) <= 0 and float(out["epochs"]) <= 0:
        raise ConfigError("give epochs > 0 or max_steps > 0")
    return out


def require_trl() -> None:
    """TRL and peft are the training extra; say how to install them when missing."""
    for mod in ("trl", "peft", "datasets"):
        try:
            __import__(mod)
        except ImportError:
            raise MissingDependency(f"training needs {mod}: {TRAIN_PIP}") from None


def begin(options: dict | None, own: dict) -> tuple[dict, float, Any, Any]:
    """Start a causal-LM recipe: check the extra is installed, merge options, seed, load the model.
    Returns (options, start time, model, tokenizer)."""
    require_trl()
    opts = merged(options, own)
    started = time.perf_counter()
    from transformers import set_seed

    set_seed(int(opts["seed"]))
    model, tok = load_causal(opts["model"], opts)
    return opts, started, model, tok


def use_bf16(opts: dict) -> bool:
    import torch

    return bool(opts["bf16"]) if opts["bf16"] is not None else torch.cuda.is_available()


def load_causal(model: str | None, opts: dict) -> tuple[Any, Any]:
    """A trainable causal LM and its tokenizer (pad token set), float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mmrag.bundled import resolve_causal_lm

    path = resolve_causal_lm(model)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if use_bf16(opts) else torch.float32)
    except (OSError, ValueError) as e:
        raise ModelNotFound(f"could not load model {path!r} ({type(e).__name__}: {e}); give a local folder or a "
                            "Hugging Face id in the local cache") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    lm.config.pad_token_id = tok.pad_token_id
    return lm, tok


def lora_config(opts: dict) -> Any:
    """peft ``LoraConfig`` on every linear layer when ``lora_r`` > 0, else None."""
    r = int(opts["lora_r"])
    if r <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=int(opts["lora_alpha"] or 2 * r), lora_dropout=float(opts["lora_dropout"]),
                      target_modules="all-linear", task_type="CAUSAL_LM")


def trainer_kwargs(out: Path, opts: dict) -> dict:
    """The TrainingArguments fields every recipe sets the same way (TRL configs accept them too)."""
    import torch

    return dict(
        output_dir=str(Path(out) / "checkpoints"), num_train_epochs=float(opts["epochs"]),
        max_steps=int(opts["max_steps"]), learning_rate=float(opts["lr"]),
        per_device_train_batch_size=int(opts["batch_size"]), gradient_accumulation_steps=int(opts["grad_accum"]),
        warmup_steps=opts["warmup"], lr_scheduler_type=str(opts["scheduler"]), seed=int(opts["seed"]),
        data_seed=int(opts["seed"]), logging_steps=1, save_strategy="no", report_to=[],
        bf16=use_bf16(opts), use_cpu=not torch.cuda.is_available(), disable_tqdm=not opts["progress"],
        dataloader_num_workers=0, remove_unused_columns=False,
    )


def history(trainer: Any, key: str = "loss") -> list[float]:
    """Per-step values of ``key`` from a trainer's log history."""
    return [float(r[key]) for r in trainer.state.log_history if key in r]


def merge_lora(model: Any) -> Any:
    """The plain model with LoRA adapters merged in (a model without adapters unchanged)."""
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        return model.merge_and_unload()
    return model


def save(model: Any, processor: Any, out: Path, summary: dict) -> dict:
    """Write the (merged) model, its tokenizer/processor and ``train_summary.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for work in ("checkpoints", "sft", "grpo"):  # trainer output folders that stayed empty (save_strategy="no")
        folder = out / work
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder)
    model = merge_lora(model)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    summary = {**summary, "saved_to": str(out)}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def summary(method: str, opts: dict, started: float, examples: int, units: int, **extra: Any) -> dict:
    """The training summary every recipe returns (also written next to the model)."""
    return {"method": method, "examples": examples, "training_units": units,
            "options": {k: v for k, v in opts.items() if k != "progress"},
            "seconds": round(time.perf_counter() - started, 2), **extra}


def window_of(example: RankingExample, size: int, rng: random.Random | None) -> tuple[list[tuple[str, str]], dict[int, int]]:
    """Up to ``size`` candidates and their labels by position: the first-stage head, with the
    example's positives that fall below it swapped in for its last negatives (so a window holds
    what the labels say is relevant), shuffled when ``rng`` is given (no position prior to learn)."""
    head = list(example.candidates[:size])
    missing = [c for c in example.candidates[size:] if example.label(c[0]) > 0]
    for i in range(len(head) - 1, -1, -1):
        if not missing:
            break
        if example.label(head[i][0]) <= 0:
            head[i] = missing.pop(0)
    if rng is not None:
        rng.shuffle(head)
    return head, {i: example.label(d) for i, (d, _) in enumerate(head) if example.label(d) > 0}


def with_positives(examples: Sequence[RankingExample]) -> list[RankingExample]:
    """The examples that have a relevant candidate and at least two candidates (others teach nothing)."""
    kept = [e for e in examples if e.positives() and len(e.candidates) >= 2]
    if not kept:
        raise ConfigError("no training example has a relevant candidate among two or more; check the qrels "
                          "match the candidates' doc ids")
    return kept


def prompt_rows(examples: Sequence[RankingExample], size: int, opts: dict, prompt: Any) -> list[dict]:
    """One row per example with a positive: ``prompt(query, candidates)`` over a window of ``size``
    (shuffled when ``opts["shuffle"]``) and the window's labels by position."""
    rng = random.Random(int(opts["seed"])) if opts.get("shuffle") else None
    rows = []
    for e in with_positives(examples):
        window, relevance = window_of(e, size, rng)
        rows.append({"prompt": prompt(e.query, candidates(window)),
                     "labels": [relevance.get(i, 0) for i in range(len(window))]})
    return rows


def candidates(window: Sequence[tuple[str, str]]) -> list:
    from mmrag.types import Candidate

    return [Candidate(id=d, text=t) for d, t in window]


def rerank_ndcg(reranker: Any, examples: Sequence[RankingExample], k: int = 10) -> float:
    """Mean nDCG@k (ir-measures) of ``reranker`` over ``examples`` (held-out evaluation)."""
    from mmrag.eval.trec import evaluate, run_from_rankings

    rankings, qrels = {}, {}
    for e in examples:
        cands = candidates(e.candidates)
        if e.images:
            from mmrag.types import Candidate

            cands = [Candidate(id=c.id, text=c.text, image=_open(img)) for c, img in zip(cands, e.images)]
        rankings[e.qid] = [s.id for s in reranker.rerank(e.query, cands)]
        qrels[e.qid] = {d: int(v) for d, v in e.relevance.items()}
    return evaluate(qrels, run_from_rankings(rankings), [f"nDCG@{k}"])[f"nDCG@{k}"]


def _open(image: Any) -> Any:
    if isinstance(image, (str, Path)):
        from PIL import Image

        with Image.open(image) as im:
            return im.convert("RGB")
    return image
