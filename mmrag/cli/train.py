"""``mmrag train encoder`` (contrastive fine-tuning with modality-aware hard negatives) and
``mmrag train reranker`` (every reranker-training method of ``mmrag.train.methods`` behind one command)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, QuietOpt, emit, handle_errors, setup_logging
from mmrag.errors import ConfigError

train_app = typer.Typer(help="Fine-tune encoders and train rerankers on your own data.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _json_object(text: Optional[str], flag: str) -> dict:
    """A JSON object given on the command line ({} when absent)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag} must be a JSON object ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, e.g. '{{\"model\": \"./tiny\"}}'")
    return value


def _encoder_spec(config: str, field: Optional[str], encoder: Optional[str], options: Optional[str]) -> tuple[str, dict]:
    """The encoder to train: ``--encoder`` + ``--options`` JSON, else a field of the config."""
    from mmrag.config import load_config

    extra = _json_object(options, "--options")
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


def _reranker_help() -> str:
    from mmrag.train.methods import METHODS

    methods = "\n".join(f"  {name}\n    {what}" for name, (_, what) in METHODS.items())
    return f"""Train a reranker into --out; the matching reranker loads it by model: <folder>.

\b
Methods (--method):
{methods}

\b
Inputs (exactly one):
  --beir DIR [--split train]: a BEIR folder (corpus.jsonl, queries.jsonl,
    qrels/<split>.tsv); candidates (the hard negatives) are mined from mmrag's own index of the
    corpus (--candidates index: the preset's first stage, built once, cached)
    or from BM25 over it (--candidates bm25)
  --run FILE --qrels FILE --corpus FILE --queries FILE: a TREC run ranks the
    candidates; texts from BEIR .jsonl or id<TAB>text .tsv files
  --rank-llm FILE --qrels FILE: rank_llm JSON
    ([{{query, hits: [{{qid, docid, content, score}}]}}]) + TREC qrels

\b
Output: --out DIR holds the model and train_report.json; use it with
  mmrag eval rerank --dataset D --reranker cross-encoder --model DIR
  or in a config: reranker: {{name: cross-encoder, options: {{model: DIR}}}}

\b
--options: method settings as JSON, e.g. for cross-encoder
  {{"negatives": 2, "random_negatives": 1, "skip": 0, "loss": "bce"|"lambda",
  "max_length": 256}} (hard negatives from the candidates, easy ones from
  other queries' candidates).
--synthetic-docs (cross-encoder): one passage per query written by
  --generator replaces the labelled positives (ChatGPT-RetrievalQA recipe)."""


def load_method(name: str):  # noqa: ANN201 - returns the method's train function
    """The method's ``train`` function; a missing module or package becomes MissingDependency with the pip command."""
    from mmrag.errors import MissingDependency
    from mmrag.train.methods import METHODS, get_method

    try:
        return get_method(name)
    except ModuleNotFoundError as e:
        module = METHODS[name][0]
        if e.name and (e.name == module or module.startswith(e.name + ".")):
            raise MissingDependency(f"training method {name!r} is not in this mmrag install ({module} is missing); "
                                    "upgrade: pip install -U 'mmrag[train]'") from None
        package = (e.name or "?").split(".")[0]
        raise MissingDependency(f"training method {name!r} needs the package {package!r}: "
                                f"pip install {package.replace('_', '-')} (or pip install 'mmrag[train]')") from None


def load_examples(beir: Optional[Path], split: str, candidates: str, run: Optional[Path], qrels: Optional[Path],
                  corpus: Optional[Path], queries: Optional[Path], rank_llm: Optional[Path], depth: int,
                  limit: Optional[int], config: str, progress: bool) -> list:
    """RankingExamples from exactly one of the three input kinds."""
    from mmrag.train import ranking_data

    given = [k for k, v in (("--beir", beir), ("--run", run), ("--rank-llm", rank_llm)) if v is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one input: --beir DIR, --run FILE (with --qrels --corpus --queries), "
                          f"or --rank-llm FILE (with --qrels); got {', '.join(given) or 'none'}")
    if beir is not None:
        return ranking_data.from_beir(beir, split, candidates=candidates, depth=depth, limit=limit,
                                      config=config, progress=progress)
    if qrels is None:
        raise ConfigError(f"{given[0]} needs --qrels FILE (TREC qrels or BEIR tsv)")
    if run is not None:
        if corpus is None or queries is None:
            raise ConfigError("--run needs --corpus FILE and --queries FILE (BEIR .jsonl or id<TAB>text .tsv)")
        return ranking_data.from_trec_run(run, qrels, corpus, queries, depth=depth, limit=limit)
    return ranking_data.from_rank_llm(rank_llm, qrels, depth=depth, limit=limit)


@train_app.command("reranker", help=_reranker_help())
@handle_errors
def train_reranker_cmd(
    method: str = typer.Option(..., "--method", help="cross-encoder | first | rank-r1 | reasonrank | mm-r5."),
    out: Path = typer.Option(..., "--out", help="Folder for the trained model and train_report.json."),
    beir: Optional[Path] = typer.Option(None, "--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)."),
    split: str = typer.Option("train", "--split", help="qrels/<split>.tsv of the BEIR folder."),
    candidates: str = typer.Option("index", "--candidates", help="BEIR candidates: index (mmrag's first stage) | bm25."),
    run: Optional[Path] = typer.Option(None, "--run", help="TREC run file ranking the candidates."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="TREC qrels (qid 0 docid grade) or BEIR tsv."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Passage texts for --run: BEIR .jsonl or id<TAB>text .tsv."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="Query texts for --run: BEIR .jsonl or id<TAB>text .tsv."),
    rank_llm: Optional[Path] = typer.Option(None, "--rank-llm", help="rank_llm JSON with candidates and their texts."),
    depth: int = typer.Option(30, "--depth", help="First-stage candidates kept per query (negatives come from them)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Train on the first N queries only."),
    model: Optional[str] = typer.Option(None, "--model", help="Backbone id or folder (default: the method's; cross-encoder: bundled MiniLM)."),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N optimiser steps (overrides --epochs)."),
    lr: Optional[float] = typer.Option(None, "--lr"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    lora_r: Optional[int] = typer.Option(None, "--lora-r", help="LoRA rank through peft (LLM methods)."),
    synthetic_docs: bool = typer.Option(False, "--synthetic-docs", help="cross-encoder: positives written by --generator, one per query."),
    generator: Optional[str] = typer.Option(None, "--generator", help="Generator for --synthetic-docs (hf-causal = SmolLM2 bundled, openai-compatible)."),
    options: Optional[str] = typer.Option(None, "--options", help="Method-specific settings as JSON, merged last."),
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    setup_logging(quiet)
    from mmrag.train.methods import METHODS

    if method not in METHODS:
        raise ConfigError(f"unknown training method {method!r}; choose one of: {', '.join(METHODS)}")
    if depth < 1:
        raise ConfigError("--depth must be at least 1")
    if (synthetic_docs or generator) and method != "cross-encoder":
        raise ConfigError("--synthetic-docs and --generator belong to --method cross-encoder")
    given = {"model": model, "epochs": epochs, "max_steps": max_steps, "lr": lr, "batch_size": batch_size,
             "seed": seed, "lora_r": lora_r, "generator": generator}
    opts = {k: v for k, v in given.items() if v is not None}
    if synthetic_docs:
        opts["synthetic_docs"] = True
    if quiet:
        opts["progress"] = False
    opts.update(_json_object(options, "--options"))
    train_fn = load_method(method)
    examples = load_examples(beir, split, candidates, run, qrels, corpus, queries, rank_llm, depth, limit,
                             config, not quiet)
    with contextlib.redirect_stdout(sys.stderr):  # trainer log lines must not mix with --json output
        summary = train_fn(examples, out, opts)
    emit(summary, as_json, lambda r: typer.echo(
        f"trained {method} on {len(examples)} queries in {r.get('seconds', float('nan')):.1f}s; saved to {out}\n"
        f"load it with model: {out}"))
