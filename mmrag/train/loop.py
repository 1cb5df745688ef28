"""Contrastive fine-tuning of an encoder: mine negatives → InfoNCE (in-batch + mined) → safetensors.

Works with any encoder that offers ``train_embed(texts, images, is_query)`` (differentiable,
normalised), ``torch_model`` and ``save_trained(dir)``: the CLIP family (open_clip, CLIPModel,
SigLIP) fully, and the Qwen2-VL ones (DSE, MM-Embed) with LoRA adapters through peft.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmrag.errors import ConfigError
from mmrag.train.data import Item, Pair, Query
from mmrag.train.negatives import NegativeConfig, mine


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    temperature: float = 0.05
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    mine_every: int = 1  # re-mine with the current model every N epochs
    # epochs trained with random negatives before mining starts: hard negatives are only as good
    # as the model that ranks them (MM-Embed mines with a retriever trained in a first stage)
    warmup_epochs: int = 0
    lora: dict | None = None  # {"r", "alpha", "dropout", "target_modules"} → peft LoRA adapters
    seed: int = 0
    encode_batch: int = 64  # batch size when embedding the whole corpus for mining
    # BatchNorm layers (ResNet towers) keep their running statistics: the usual choice when
    # fine-tuning, and a step may then hold a single image. False lets them learn (from scratch).
    freeze_batchnorm: bool = True


def embed(encoder: Any, texts: list, images: list, is_query: bool, batch: int) -> np.ndarray:
    """Embed everything (no gradients) with the same composition the loss sees."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            out.append(encoder.train_embed(texts[s:s + batch], images[s:s + batch], is_query=is_query).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.dim), np.float32)


def _apply_lora(encoder: Any, lora: dict) -> None:
    from peft import LoraConfig, get_peft_model

    known = {"r", "alpha", "dropout", "target_modules"}
    if set(lora) - known:
        raise ConfigError(f"lora: unknown keys {sorted(set(lora) - known)}; allowed: {sorted(known)}")
    cfg = LoraConfig(r=int(lora.get("r", 8)), lora_alpha=int(lora.get("alpha", 16)),
                     lora_dropout=float(lora.get("dropout", 0.05)),
                     target_modules=lora.get("target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"]))
    encoder.torch_model = get_peft_model(encoder.torch_model, cfg)


def train_encoder(encoder: Any, items: list[Item], pairs: list[Pair], cfg: TrainConfig,
                  out: str | Path | None = None, progress: bool = True,
                  on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Fine-tune ``encoder`` in place on ``pairs``; save it to ``out`` (safetensors) when given."""
    import torch

    for attr in ("train_embed", "save_trained", "torch_model"):
        if not hasattr(encoder, attr):
            raise ConfigError(f"encoder '{encoder.name}' cannot be fine-tuned here (no {attr}); "
                              "use clip, hf-clip, siglip, dse or mm-embed")
    if cfg.negatives.kind not in ("modality", "random"):
        raise ConfigError(f"negatives must be 'modality' or 'random', got {cfg.negatives.kind!r}")
    index = {it.id: i for i, it in enumerate(items)}
    positives = [index[p.positive] for p in pairs]
    relevant = _relevant_sets(pairs, positives, items)
    modalities = [it.modality for it in items]
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.lora:
        _apply_lora(encoder, cfg.lora)
    model = encoder.torch_model
    params = [p for p in model.parameters() if p.requires_grad]
    counts = {"trainable_params": sum(p.numel() for p in params),
              "total_params": sum(p.numel() for p in model.parameters())}
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    q_text = [p.query.text for p in pairs]
    q_img = [p.query.image for p in pairs]
    i_text = [it.text for it in items]
    i_img = [it.image for it in items]
    history, negatives, started = [], None, time.perf_counter()
    steps_per_epoch = (len(pairs) + cfg.batch_size - 1) // cfg.batch_size
    bar = _bar(cfg.epochs * steps_per_epoch, progress)
    for epoch in range(cfg.epochs):
        kind = "random" if epoch < cfg.warmup_epochs else cfg.negatives.kind
        if negatives is None or kind == "random" or epoch == cfg.warmup_epochs or epoch % cfg.mine_every == 0:
            model.eval()
            scores = None
            if kind == "modality":
                scores = embed(encoder, q_text, q_img, True, cfg.encode_batch) @ \
                    embed(encoder, i_text, i_img, False, cfg.encode_batch).T
            negatives = mine(scores, relevant, modalities, replace(cfg.negatives, kind=kind), rng, positives)
        model.train()
        if cfg.freeze_batchnorm:
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        losses = []
        for batch in np.array_split(rng.permutation(len(pairs)), steps_per_epoch):
            cand = list(dict.fromkeys([positives[b] for b in batch] + [n for b in batch for n in negatives[b]]))
            where = {c: j for j, c in enumerate(cand)}
            q = encoder.train_embed([q_text[b] for b in batch], [q_img[b] for b in batch], is_query=True)
            c = encoder.train_embed([i_text[j] for j in cand], [i_img[j] for j in cand], is_query=False)
            logits = q @ c.T / cfg.temperature
            target = torch.tensor([where[positives[b]] for b in batch], device=logits.device)
            # another positive of the same query (e.g. a second rendering) is no negative
            mask = torch.tensor([[j in relevant[b] and j != positives[b] for j in cand] for b in batch],
                                device=logits.device)
            logits = logits.masked_fill(mask, float("-inf"))
            loss = torch.nn.functional.cross_entropy(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(1)
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
        history.append(record)
        if on_epoch:
            on_epoch(epoch + 1, record)
    bar.close()
    model.eval()
    report = {"pairs": len(pairs), "items": len(items), "config": asdict(cfg), "history": history, **counts,
              "seconds": time.perf_counter() - started, "encoder": encoder.identity}
    if out is not None:
        out = Path(out)
        encoder.save_trained(out)
        (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
        report["saved_to"] = str(out)
    return report


def _relevant_sets(pairs: list[Pair], positives: list[int], items: list[Item]) -> list[set[int]]:
    """Items that are never a negative for each pair: every positive of the same query, and any
    item identical to the query itself (an image query is often also an item in the corpus)."""
    def key(text: str | None, image: Any) -> tuple:
        return text, image if image is None or isinstance(image, str) else (
            str(image) if isinstance(image, Path) else id(image))

    same_as: dict = {}
    for i, it in enumerate(items):
        same_as.setdefault(key(it.text, it.image), set()).add(i)
    by_query: dict = {}
    for p, pos in zip(pairs, positives):
        by_query.setdefault(key(p.query.text, p.query.image), set()).add(pos)
    return [by_query[k] | same_as.get(k, set()) for k in (key(p.query.text, p.query.image) for p in pairs)]


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="step", disable=not enabled, leave=False)


def recall_at_1(encoder: Any, queries: list[Query], positives: list[str], items: list[Item],
                exclude: list[str | None] | None = None, batch: int = 64) -> float:
    """Held-out Recall@1 through ir-measures: each query ranks all ``items`` (minus its own ``exclude`` id)."""
    from mmrag.eval.trec import evaluate, run_from_rankings

    q = embed(encoder, [x.text for x in queries], [x.image for x in queries], True, batch)
    c = embed(encoder, [it.text for it in items], [it.image for it in items], False, batch)
    scores = q @ c.T
    ids = [it.id for it in items]
    rankings, qrels = {}, {}
    for n, row in enumerate(scores):
        order = [ids[j] for j in np.argsort(-row, kind="stable")[:11]]
        skip = exclude[n] if exclude else None
        rankings[f"q{n}"] = [i for i in order if i != skip][:10]
        qrels[f"q{n}"] = {positives[n]: 1}
    return evaluate(qrels, run_from_rankings(rankings), ["R@1"])["R@1"]
