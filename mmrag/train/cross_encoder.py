"""``mmrag train reranker --method cross-encoder``: a sentence-transformers CrossEncoder from any encoder.

Each query gives its labelled positives and ``negatives`` hard negatives sampled from its
first-stage candidates that carry no positive label (ranks ``skip`` onwards: the very top is
where unlabelled positives hide), plus ``random_negatives`` easy negatives: other queries'
candidates that are neither labelled for it nor among its own candidates. ``loss="bce"`` trains pointwise on (query, passage, 0/1) pairs
with BinaryCrossEntropyLoss (positives weighted by the negatives per positive, as
sentence-transformers' MS MARCO recipe); ``loss="lambda"`` trains listwise on (query, [positives +
negatives], graded labels) with LambdaLoss. Training is sentence-transformers' own CrossEncoderTrainer.

With ``synthetic_docs`` the positives are written by a generator, one per query (the
ChatGPT-RetrievalQA study: synthetic documents instead of synthetic queries): any mmrag
``generator`` backend that writes free text (``hf-causal``: SmolLM2 bundled; ``openai-compatible``
or ``qwen-vl`` with a server). The negatives stay the mined ones, so a human-positives run and a
synthetic-positives run differ only in the positives. Written documents are kept in
``out/synthetic_docs.jsonl`` and reused when training is run again into the same folder.

The saved folder (config.json + model.safetensors + tokenizer, a one-logit sequence
classifier) loads with the ``cross-encoder`` reranker by ``model: <folder>``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, MissingDependency
from mmrag.train.ranking_types import RankingExample

DEFAULTS: dict[str, Any] = {
    "model": None,  # backbone: None = the bundled all-MiniLM-L6-v2; any encoder id or folder
    # a fresh head on a bi-encoder sits at the constant-score loss for its first ~25 steps at 5e-5, even
    # on 20 queries (one epoch of 500 SciFact queries at 5e-5 never left it): a higher peak lr and 2 epochs
    "epochs": 2, "max_steps": -1, "lr": 1e-4, "batch_size": 16, "seed": 0, "warmup_ratio": 0.1,
    # hard negatives (mined, topically close) plus easy ones (other queries' candidates): the easy ones
    # give the fresh head a signal it can learn first
    "max_length": 256, "negatives": 2, "random_negatives": 1, "skip": 0, "loss": "bce",
    "synthetic_docs": False, "generator": "hf-causal", "generator_options": {},
    "synthetic_max_new_tokens": 128, "synthetic_prompt": None, "lora_r": 0, "progress": True,
}
LOSSES = ("bce", "lambda")
SYNTHETIC_SYSTEM = "You write passages of documents. Reply with the passage only."
SYNTHETIC_PROMPT = ("Write a short passage, as it would appear in a reference document, that answers or "
                    "directly addresses this search query.\nQuery: {query}\nPassage:")


def _deps() -> None:
    import importlib.util

    missing = [m for m in ("torch", "sentence_transformers", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"cross-encoder training needs {', '.join(missing)}: pip install 'mmrag[train]' "
                                "(or pip install sentence-transformers datasets)")


def settings(options: dict) -> dict:
    """DEFAULTS updated with ``options``; unknown keys are an error that lists the known ones."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"cross-encoder training: unknown options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **options}
    if s["loss"] not in LOSSES:
        raise ConfigError(f"cross-encoder loss must be one of {', '.join(LOSSES)}, got {s['loss']!r}")
    if int(s["negatives"]) + int(s["random_negatives"]) < 1 or int(s["negatives"]) < 0 \
            or int(s["random_negatives"]) < 0 or int(s["batch_size"]) < 1:
        raise ConfigError("cross-encoder training needs negatives >= 0, random_negatives >= 0 (at least one "
                          "negative in all) and batch_size >= 1")
    return s


def sample_negatives(ex: RankingExample, count: int, skip: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` candidates without a positive label, drawn from first-stage ranks ``skip`` onwards."""
    pool = [c for c in ex.candidates[skip:] if ex.label(c[0]) <= 0]
    if len(pool) <= count:
        return pool
    return [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]


def easy_negatives(ex: RankingExample, pool: list[tuple[str, str]], count: int,
                   rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` passages from other queries' candidates (``pool``): neither labelled for ``ex`` nor among
    its own candidates, so they are easy negatives."""
    if count <= 0 or not pool:
        return []
    own = {d for d, _ in ex.candidates} | {d for d, g in ex.relevance.items() if g > 0}
    out: list[tuple[str, str]] = []
    for i in rng.permutation(len(pool)):
        if pool[i][0] not in own:
            out.append(pool[i])
            if len(out) == count:
                break
    return out


def write_documents(examples: list[RankingExample], s: dict, cache: Path | None) -> dict[str, str]:
    """One generated passage per query (qid → text), reusing those already in ``cache``."""
    from tqdm.auto import tqdm

    from mmrag import generate

    done: dict[str, str] = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["qid"]] = row["text"]
    todo = [ex for ex in examples if ex.qid not in done]
    if todo:
        gen = generate.load(s["generator"], **(s["generator_options"] or {}))
        prompt = s["synthetic_prompt"] or SYNTHETIC_PROMPT
        for ex in tqdm(todo, desc="write documents", unit="query", disable=not s["progress"]):
            text = free_text(gen, SYNTHETIC_SYSTEM, prompt.format(query=ex.query), int(s["synthetic_max_new_tokens"]))
            done[ex.qid] = text.strip()
            if cache is not None:
                with open(cache, "a") as f:
                    f.write(json.dumps({"qid": ex.qid, "query": ex.query, "text": done[ex.qid]}) + "\n")
    return done


def free_text(gen: Any, system: str, user: str, max_new_tokens: int) -> str:
    """A generator's plain reply to one prompt: hf-causal (``generate``) or a Qwen-VL / OpenAI-style backend."""
    if hasattr(gen, "prompt_ids") and hasattr(gen, "generate"):  # hf-causal
        gen.max_new_tokens = max_new_tokens
        return gen.generate([{"role": "system", "content": system}, {"role": "user", "content": user}])[0]
    if hasattr(type(gen), "backend"):  # qwen-vl, openai-compatible
        from mmrag.vlm import text_part

        messages = [{"role": "system", "content": [text_part(system)]}, {"role": "user", "content": [text_part(user)]}]
        return gen.backend.generate(messages, max_new_tokens=max_new_tokens, temperature=0.0)
    raise ConfigError(f"generator {getattr(gen, 'name', gen)!r} does not write free text; use hf-causal "
                      "(SmolLM2 bundled, any causal LM) or openai-compatible for --synthetic-docs")


def build_rows(examples: list[RankingExample], s: dict, synthetic: dict[str, str] | None) -> dict[str, list]:
    """Training columns for the chosen loss (pointwise pairs or listwise groups)."""
    rng = np.random.default_rng(int(s["seed"]))
    pool = list({d: t for ex in examples for d, t in ex.candidates}.items())
    cols: dict[str, list] = {"query": [], "passage": [], "label": []} if s["loss"] == "bce" else \
        {"query": [], "docs": [], "labels": []}
    for ex in examples:
        if synthetic is not None:
            if not synthetic.get(ex.qid):
                continue
            pos = [(synthetic[ex.qid], 1)]
        else:
            pos = [(text, ex.label(d)) for d, text in ex.candidates if ex.label(d) > 0]
        if not pos:
            continue
        neg = [(text, 0) for _, text in sample_negatives(ex, int(s["negatives"]), int(s["skip"]), rng)
               + easy_negatives(ex, pool, int(s["random_negatives"]), rng)]
        if not neg:
            continue
        if s["loss"] == "bce":
            for text, grade in pos + neg:
                cols["query"].append(ex.query)
                cols["passage"].append(text)
                cols["label"].append(float(grade > 0))
        else:
            group = pos + neg
            cols["query"].append(ex.query)
            cols["docs"].append([t for t, _ in group])
            cols["labels"].append([float(g) for _, g in group])
    return cols


def train(examples: list[RankingExample], out: Path, options: dict) -> dict:
    """Train a CrossEncoder on ``examples`` and save it to ``out``; returns the training summary."""
    _deps()
    s = settings(options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    synthetic = None
    gen_seconds = 0.0
    if s["synthetic_docs"]:
        synthetic = write_documents(examples, s, out / "synthetic_docs.jsonl")
        gen_seconds = time.perf_counter() - started
    cols = build_rows(examples, s, synthetic)
    if not cols["query"]:
        raise ConfigError("no training rows: every query needs a positive (labelled or written) and at least one "
                          "candidate without a positive label (mine deeper candidates)")
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (CrossEncoder, CrossEncoderTrainer,
                                                     CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss

    from mmrag.bundled import minilm_path

    backbone = s["model"] or str(minilm_path())
    torch.manual_seed(int(s["seed"]))
    try:
        model = CrossEncoder(backbone, num_labels=1, max_length=int(s["max_length"]), device="cpu"
                             if not torch.cuda.is_available() else None)
    except (OSError, ValueError) as e:
        from mmrag.errors import ModelNotFound

        raise ModelNotFound(f"could not load backbone {backbone!r} ({e}); give an encoder folder or a cached "
                            "Hugging Face id") from None
    if int(s["lora_r"]) > 0:
        raise ConfigError("lora_r is not used by cross-encoder training (small encoders train fully); drop --lora-r")
    if s["loss"] == "bce":
        n_pos = max(1.0, float(sum(cols["label"])))
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor((len(cols["label"]) - n_pos) / n_pos))
    else:
        loss = LambdaLoss(model)
    data = Dataset.from_dict(cols)
    steps_per_epoch = max(1, -(-len(data) // int(s["batch_size"])))
    total = int(s["max_steps"]) if int(s["max_steps"]) > 0 else int(steps_per_epoch * float(s["epochs"]))
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=float(s["epochs"]), max_steps=int(s["max_steps"]),
        per_device_train_batch_size=int(s["batch_size"]), learning_rate=float(s["lr"]),
        warmup_steps=int(float(s["warmup_ratio"]) * total),
        seed=int(s["seed"]), save_strategy="no", report_to="none", logging_steps=max(1, total // 20),
        disable_tqdm=not s["progress"], dataloader_drop_last=False, dataloader_pin_memory=torch.cuda.is_available())
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout is for --json
        train_out = trainer.train()
    model.save_pretrained(str(out))
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    params = sum(p.numel() for p in model.parameters())
    summary = {
        "method": "cross-encoder", "backbone": backbone, "out": str(out), "queries": len(examples),
        "rows": len(data), "row_kind": "pairs" if s["loss"] == "bce" else "lists", "steps": trainer.state.global_step,
        "train_loss": float(train_out.training_loss), "loss_curve": losses,
        "synthetic_docs": bool(synthetic), "generator": s["generator"] if synthetic else None,
        "generation_seconds": round(gen_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
        "parameters": params, "size_mb": round(sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20, 1),
        "settings": {k: v for k, v in s.items() if k != "progress"},
        "load_with": f"reranker: {{name: cross-encoder, options: {{model: {out}}}}}",
    }
    (out / "train_report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    import shutil

    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return summary
