"""``mmrag eval retrieval|pages|rerank``: quality on standard datasets, metrics from ir-measures.

Each command writes its metrics JSON and a TREC run next to ``--out`` (default: a folder in
the system temp dir) and prints the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, QuietOpt, emit, handle_errors, setup_logging

eval_app = typer.Typer(help="Measure retrieval, page retrieval and reranking quality.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

OutOpt = typer.Option(None, "--out", help="Folder for metrics.json and run.trec (default: a temp folder).")


def _human(metrics: dict) -> None:
    for key, value in metrics.items():
        if isinstance(value, float):
            typer.echo(f"{key:>14}  {value:.4f}")
        elif not isinstance(value, (dict, list)):
            typer.echo(f"{key:>14}  {value}")


@eval_app.command("retrieval")
@handle_errors
def eval_retrieval(
    dataset: Path = typer.Option(..., "--dataset", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv."),
    split: str = typer.Option("test", "--split", help="qrels/<split>.tsv to evaluate."),
    mode: str = typer.Option("config", "--mode", help="config (the preset's search) | bm25 | dense | hybrid."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N queries."),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="Reranker name applied to the first stage."),
    model: Optional[str] = typer.Option(None, "--model", help="Model id or path for the reranker."),
    rerank_depth: int = typer.Option(30, "--rerank-depth", help="Rerank the first N hits of each query."),
    out: Optional[Path] = OutOpt,
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Index a BEIR corpus and report nDCG@10 and R@100 (linear gain, as trec_eval), optionally reranked."""
    setup_logging(quiet)
    from mmrag.eval.retrieval import evaluate_beir

    metrics = evaluate_beir(dataset, config=config, split=split, mode=mode, limit=limit, out=out,
                            progress=not quiet, rerank=rerank, model=model, rerank_depth=rerank_depth)
    emit(metrics, as_json, _human)


@eval_app.command("pages")
@handle_errors
def eval_pages(
    dataset: Path = typer.Option(..., "--dataset", help="documents/, questions.jsonl, qrels_pages.tsv."),
    scope: str = typer.Option("document", "--scope", help="document: rank the question's own pages | corpus: all pages."),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="Reranker name applied to the first stage."),
    answer: bool = typer.Option(False, "--answer", help="Also generate answers and report answer-string recall."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Reuse/keep the built index here."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N questions."),
    out: Optional[Path] = OutOpt,
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Page retrieval on PDFs with page-level qrels: macro Recall@1/3/5 and hit@1/5."""
    setup_logging(quiet)
    if scope not in ("document", "corpus"):
        raise typer.BadParameter("--scope must be document or corpus")
    from mmrag.eval.pages import evaluate_pages

    metrics = evaluate_pages(dataset, config=config, scope=scope, rerank=rerank, answer=answer,
                             index_dir=index_dir, limit=limit, out=out, progress=not quiet)
    emit(metrics, as_json, _human)


@eval_app.command("rerank")
@handle_errors
def eval_rerank(
    dataset: Path = typer.Option(..., "--dataset", help="rank_llm top-100 JSON + TREC qrels (or NovelEval's data.json)."),
    reranker: str = typer.Option(..., "--reranker", help="Registered reranker name (see `mmrag models`)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model id or path for the reranker."),
    depth: int = typer.Option(100, "--depth", help="Rerank the first N candidates of each query."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N queries."),
    out: Optional[Path] = OutOpt,
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Rerank first-stage candidates and report nDCG@10 and ms per query."""
    setup_logging(quiet)
    from mmrag.eval.rerank import evaluate_rerank

    metrics = evaluate_rerank(dataset, reranker=reranker, model=model, config=config, depth=depth,
                              limit=limit, out=out, progress=not quiet)
    emit(metrics, as_json, _human)
