"""``mmrag search`` (ranked pages) and ``mmrag ask`` (answer with citations)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mmrag.cli import app
from mmrag.cli.common import ConfigOpt, JsonOpt, QuietOpt, emit, handle_errors, setup_logging

IndexOpt = typer.Option(..., "--index", "-i", help="Index folder built by `mmrag index`.")
FilterOpt = typer.Option([], "--filter", "-f",
                         help="doc_id=ID, path=GLOB, page=N or page=A-B, or any metadata KEY=VALUE (repeatable).")
RerankOpt = typer.Option(None, "--rerank", help="Reranker name (see `mmrag models`); default: the config's.")


def parse_filters(items: List[str]) -> dict | None:
    """CLI ``KEY=VALUE`` items → the API's filters dict."""
    from mmrag.errors import QueryError

    filters: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise QueryError(f"--filter {item!r} must be KEY=VALUE, e.g. page=2-5 or path='*.pdf'")
        if key in ("doc_id", "doc_ids"):
            filters.setdefault("doc_id", []).append(value)
        elif key in ("path", "page", "pages"):
            filters[key] = value
        else:
            filters.setdefault("metadata", {})[key] = value
    return filters or None


@app.command("search")
@handle_errors
def search_cmd(
    query: str = typer.Argument(..., help="What to look for."),
    index_dir: Path = IndexOpt,
    k: int = typer.Option(10, "-k", help="How many pages."),
    rerank: Optional[str] = RerankOpt,
    filters: List[str] = FilterOpt,
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Ranked pages for QUERY, each with its best passage and that passage's box."""
    setup_logging(quiet)
    from mmrag.api import check_query
    from mmrag.config import load_config

    cfg = load_config(config)
    check_query(query, cfg.search.max_query_chars)
    from mmrag.api import RAG

    rag = RAG(cfg, index_dir)
    try:  # closing frees the index's connections (a Milvus Lite file serves one process at a time)
        hits = rag.search(query, k=k, filters=parse_filters(filters), rerank=rerank)
    finally:
        rag.close()

    def human(data: dict) -> None:
        if not data["hits"]:
            typer.echo("no matching pages")
        for i, h in enumerate(data["hits"], 1):
            snippet = " ".join(h["snippet"].split())[:160]
            typer.echo(f"{i:>2}. {h['score']:.3f}  {h['path']}  p.{h['page']}\n    {snippet}")

    emit({"hits": [h.to_dict() for h in hits]}, as_json, human)


@app.command("ask")
@handle_errors
def ask_cmd(
    question: str = typer.Argument(..., help="A question about the indexed documents."),
    index_dir: Path = IndexOpt,
    k: Optional[int] = typer.Option(None, "-k", help="Pages given to the generator (default: ask.contexts)."),
    rerank: Optional[str] = RerankOpt,
    generator: Optional[str] = typer.Option(None, "--generator", help="Generator name; default: the config's."),
    filters: List[str] = FilterOpt,
    config: str = ConfigOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Answer QUESTION from the best pages, citing document, page and region."""
    setup_logging(quiet)
    from mmrag.api import RAG, check_query
    from mmrag.config import load_config

    cfg = load_config(config)
    check_query(question, cfg.search.max_query_chars)
    rag = RAG(cfg, index_dir)
    try:
        answer = rag.ask(question, k=k, filters=parse_filters(filters), rerank=rerank, generator=generator)
    finally:
        rag.close()

    def human(data: dict) -> None:
        typer.echo(data["answer"])
        for c in data["citations"]:
            box = f" [{', '.join(f'{v:.0f}' for v in c['bbox'])}]" if c.get("bbox") else ""
            typer.echo(f"  - {c['path']} p.{c['page']}{box}")

    emit(answer.to_dict(), as_json, human)
