"""``mmrag train encoder``: contrastive fine-tuning with modality-aware hard negatives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, QuietOpt, emit, handle_errors, setup_logging
from mmrag.errors import ConfigError

train_app = typer.Typer(help="Fine-tune encoders on your own (query → item) pairs.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _encoder_spec(config: str, field: Optional[str], encoder: Optional[str], options: Optional[str]) -> tuple[str, dict]:
    """The encoder to train: ``--encoder`` + ``--options`` JSON, else a field of the config."""
    from mmrag.config import load_config

    extra = {}
    if options:
        try:
            extra = json.loads(options)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--options must be a JSON object ({e.msg})") from None
        if not isinstance(extra, dict):
            raise ConfigError("--options must be a JSON object, e.g. '{\"model\": \"ViT-B-32\"}'")
    if encoder:
        return encoder, extra
    cfg = load_config(config)
    fields = {f.name: f for f in cfg.fields}
    name = field or next((f.name for f in cfg.fields if f.input == "pages"), cfg.fields[0].name)
    if name not in fields:
        raise ConfigError(f"no field {name!r} in the config; fields: {', '.join(fields)}")
    return fields[name].encoder, {**fields[name].options, **extra}


@train_app.command("encoder")
@handle_errors
def train_encoder_cmd(
    items: Path = typer.Option(..., "--items", help="items.jsonl: {id, text?, image?} (image paths relative to the file)."),
    pairs: Path = typer.Option(..., "--pairs", help="pairs.jsonl: {query: str | {text?, image?}, positive: item id}."),
    out: Path = typer.Option(..., "--out", help="Folder for the fine-tuned model (safetensors) and train_report.json."),
    field: Optional[str] = typer.Option(None, "--field", help="Train the encoder of this config field (default: the first page field)."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder name instead of a config field (clip, hf-clip, siglip, dse, mm-embed)."),
    options: Optional[str] = typer.Option(None, "--options", help="Encoder options as JSON, e.g. '{\"model\": \"./tiny\"}'."),
    negatives: str = typer.Option("modality", "--negatives", help="modality (hard negatives, modality-aware) | random (baseline)."),
    wrong: int = typer.Option(2, "--wrong-modality", help="Wrong-modality negatives per query, from the top of the ranking."),
    same: int = typer.Option(2, "--same-modality", help="Right-modality negatives per query, from the rank band."),
    skip: int = typer.Option(1, "--skip", help="Right-modality ranks skipped at the very top (possible unlabelled positives)."),
    band: int = typer.Option(10, "--band", help="Width of the right-modality rank band after --skip."),
    top_k: int = typer.Option(100, "--top-k", help="Retrieval depth for mining wrong-modality negatives."),
    epochs: int = typer.Option(3, "--epochs"),
    warmup_epochs: int = typer.Option(0, "--warmup-epochs", help="Epochs with random negatives before mining starts."),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(1e-4, "--lr"),
    temperature: float = typer.Option(0.05, "--temperature", help="InfoNCE temperature."),
    lora_r: int = typer.Option(0, "--lora-r", help="LoRA rank through peft (0 = full fine-tuning); use for large backbones."),
    seed: int = typer.Option(0, "--seed"),
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Fine-tune an encoder: mine negatives, InfoNCE with in-batch + mined negatives, save safetensors.

    Rebuild the index with the saved folder as the field's ``model`` option afterwards.
    """
    setup_logging(quiet)
    from mmrag import encoders
    from mmrag.train.data import load_items, load_pairs
    from mmrag.train.loop import TrainConfig, train_encoder
    from mmrag.train.negatives import NegativeConfig

    if min(epochs, batch_size) < 1 or temperature <= 0:
        raise ConfigError("--epochs and --batch-size must be >= 1 and --temperature > 0")
    if negatives not in ("modality", "random"):
        raise ConfigError(f"--negatives must be modality or random, got {negatives!r}")
    item_list = load_items(items)
    pair_list = load_pairs(pairs, item_list)
    name, opts = _encoder_spec(config, field, encoder, options)
    opts.setdefault("progress", not quiet)
    enc = encoders.load(name, **opts)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, temperature=temperature, seed=seed,
                      warmup_epochs=warmup_epochs,
                      lora={"r": lora_r, "alpha": 2 * lora_r} if lora_r > 0 else None,
                      negatives=NegativeConfig(kind=negatives, wrong_modality=wrong, same_modality=same,
                                               skip=skip, band=band, top_k=top_k))
    report = train_encoder(enc, item_list, pair_list, cfg, out=out, progress=not quiet)
    report["next"] = f"set the field's encoder option model: {out} and re-run `mmrag index` to rebuild the index"
    emit(report, as_json, lambda r: typer.echo(
        f"trained {name} on {r['pairs']} pairs in {r['seconds']:.1f}s, final loss "
        f"{r['history'][-1]['loss']:.4f}; saved to {r['saved_to']}\n{r['next']}"))


# --- `mmrag train generator` (issue 14): RagLLaVA's noise-injected training of the answerer ----------
@train_app.command("generator")
@handle_errors
def train_generator_cmd(
    data: Path = typer.Option(..., "--data", help="QA JSONL: {question, answer, contexts: [{doc_id, page, text, image?}]} "
                              "(image paths relative to the file; contexts = the evidence pages)."),
    out: Path = typer.Option(..., "--out", help="Folder for the trained answerer (load it as the generator's model:)."),
    noise_injection: bool = typer.Option(False, "--noise-injection/--no-noise-injection",
                                         help="RagLLaVA: mix irrelevant pages into the contexts and add Gaussian noise "
                                              "to the visual input (embeddings for a text-only LM) while training."),
    model: Optional[str] = typer.Option(None, "--model", help="Causal LM or Qwen-VL id/folder (default: bundled SmolLM2)."),
    kind: str = typer.Option("auto", "--kind", help="causal | qwen-vl | auto (from the model folder)."),
    noise_pages: int = typer.Option(2, "--noise-pages", help="Irrelevant pages mixed into each question's contexts."),
    token_noise: float = typer.Option(0.1, "--token-noise", help="Std of the Gaussian noise on pixels / embeddings."),
    epochs: float = typer.Option(1.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps", help="> 0 overrides --epochs."),
    lr: float = typer.Option(1e-5, "--lr"),
    batch_size: int = typer.Option(1, "--batch-size"),
    lora_r: int = typer.Option(0, "--lora-r", help="LoRA rank through peft (0 = full fine-tuning); merged on save."),
    seed: int = typer.Option(0, "--seed"),
    options: Optional[str] = typer.Option(None, "--options", help="More training options as JSON, e.g. "
                                          "'{\"bf16\": true, \"grad_accum\": 8}'."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Fine-tune the answerer (hf-causal or qwen-vl) on question → answer with its evidence pages.

    With --noise-injection (RagLLaVA), each prompt also holds --noise-pages irrelevant pages (other
    questions' evidence) and the visual input gets Gaussian noise during training, so the answerer
    learns to answer from the right page and to ignore the rest. Prints the training summary.
    """
    import contextlib
    import sys

    setup_logging(quiet)
    from mmrag.train.generator_noise import load_qa, train

    extra = {}
    if options:
        try:
            extra = json.loads(options)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--options must be a JSON object ({e.msg})") from None
        if not isinstance(extra, dict):
            raise ConfigError("--options must be a JSON object")
    opts = {"model": model, "kind": kind, "epochs": epochs, "max_steps": max_steps, "lr": lr,
            "batch_size": batch_size, "lora_r": lora_r, "seed": seed, "progress": not quiet,
            "noise_pages": noise_pages if noise_injection else 0,
            "token_noise": token_noise if noise_injection else 0.0, **extra}
    examples = load_qa(data)
    with contextlib.redirect_stdout(sys.stderr):  # trainer log lines must not mix with --json output
        summary = train(examples, out, opts)
    emit(summary, as_json, lambda s: typer.echo(
        f"trained {s['generator']} ({s['kind']}) on {s['examples']} questions in {s['seconds']:.1f}s, loss "
        f"{s['loss'][0]:.4f} -> {s['loss'][-1]:.4f}; saved to {s['saved_to']} (use it as the generator's model:)"))
