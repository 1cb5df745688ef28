"""The Gradio page: upload and index, ask in a chat, open each citation on its page, see the pages.

A thin layout over `AppService`; every handler turns errors into a message shown in the page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.errors import MissingDependency
from mmrag.types import Citation
from mmrag.ui.service import NO_RERANK, AppService, generator_choices, reranker_choices, score_rows

if TYPE_CHECKING:
    import gradio as gr

TITLE = "mmrag · ask your documents"
SCORE_HEADERS = ["rank", "file", "page", "first-stage rank", "first-stage score", "reranked score"]
CSS = """
#answer-status p, #upload-status p { margin: 0.2em 0; }
#answer-status .error, #upload-status .error { color: #b00020; }
"""


def _status(text: str, error: bool = False) -> str:
    return f"<span class='error'>{text}</span>" if error and text else text


def build_app(service: AppService) -> "gr.Blocks":
    """The app's Blocks for ``service`` (not launched)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise MissingDependency("the app needs Gradio, which is not installed: pip install 'mmrag[ui]'") from None

    config = service.config
    rerankers = reranker_choices(config)
    generators = generator_choices(config)
    default_rerank = config.reranker.name if config.reranker and config.reranker.name in rerankers else NO_RERANK
    default_gen = config.generator.name if config.generator.name in generators else (generators[:1] or [None])[0]
    suffixes = [f".{t.lstrip('.')}" for t in config.ui.allowed_types]
    collection0 = service.names()[0]

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## {TITLE}")
        with gr.Row():
            collection = gr.Dropdown(service.names(), value=collection0, label="Collection",
                                     elem_id="collection", interactive=len(service.names()) > 1)
            reranker = gr.Dropdown(rerankers, value=default_rerank, label="Reranker", elem_id="reranker")
            generator = gr.Dropdown(generators, value=default_gen, label="Generator", elem_id="generator")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Accordion("Documents", open=True):
                    files = gr.File(file_count="multiple", file_types=suffixes, type="filepath",
                                    label=f"Upload PDFs or page images (up to {config.ui.max_upload_mb} MB each)",
                                    elem_id="upload")
                    index_btn = gr.Button("Index uploaded files", variant="secondary", elem_id="index-button")
                    upload_status = gr.Markdown(elem_id="upload-status")
                    documents = gr.Dataframe(headers=["file", "pages", "doc id"], value=service.documents(collection0),
                                             label="Indexed documents", interactive=False, elem_id="documents")
                chat = gr.Chatbot(label="Answers", elem_id="chat", height=380)
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask a question about the documents…", show_label=False,
                                          scale=5, elem_id="question")
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-button")
                answer_status = gr.Markdown(elem_id="answer-status")
                scores = gr.Dataframe(headers=SCORE_HEADERS, label="Retrieved pages: scores before and after reranking",
                                      interactive=False, elem_id="scores")
            with gr.Column(scale=3):
                citations = gr.Radio([], label="Citations (pick one to see it on its page)", elem_id="citations")
                cited_caption = gr.Markdown(elem_id="cited-caption")
                cited_image = gr.Image(label="Cited page", type="pil", interactive=False, elem_id="cited-page",
                                       format="png", height=620)
                gallery = gr.Gallery(label="Retrieved pages", elem_id="retrieved", columns=3, height=420,
                                     format="png")
        cited_state = gr.State([])

        def do_index(paths: list[str] | None, coll: str, progress: Any = gr.Progress()) -> tuple:
            report = service.upload(coll, paths or [], progress=lambda f, d: progress(f, desc=d))
            return report, service.documents(coll), None

        def do_ask(q: str, history: list, coll: str, rr: str, gen: str | None) -> tuple:
            result = service.ask(coll, q, rr or NO_RERANK, gen)
            if result.error:
                return (history, q, _status(result.error, True), gr.update(), gr.update(), gr.update(),
                        gr.update(), gr.update(), gr.update())
            history = list(history or []) + [{"role": "user", "content": q},
                                             {"role": "assistant", "content": result.answer}]
            image, caption = (None, "")
            if result.citations:
                image, caption = service.citation_image(coll, result.citations[0])
            state = [c.__dict__ for c in result.citations]
            radio = gr.update(choices=result.labels, value=result.labels[0] if result.labels else None)
            return (history, "", "", radio, state, image, caption, service.gallery(coll, result.pages),
                    score_rows(result.pages))

        def show_citation(label: str | None, state: list, coll: str) -> tuple:
            if not label or not state:
                return None, ""
            try:
                i = int(label.split("]", 1)[0].lstrip("[")) - 1
                c = Citation(**state[i])
            except (ValueError, IndexError, TypeError):
                return None, _status("That citation is no longer available; ask again.", True)
            return service.citation_image(coll, c)

        def switch(coll: str) -> tuple:
            return service.documents(coll), [], gr.update(choices=[], value=None), [], None, "", [], []

        index_btn.click(do_index, [files, collection], [upload_status, documents, files])
        ask_outputs = [chat, question, answer_status, citations, cited_state, cited_image, cited_caption, gallery,
                       scores]
        ask_btn.click(do_ask, [question, chat, collection, reranker, generator], ask_outputs)
        question.submit(do_ask, [question, chat, collection, reranker, generator], ask_outputs)
        citations.input(show_citation, [citations, cited_state, collection], [cited_image, cited_caption])
        collection.change(switch, [collection],
                          [documents, chat, citations, cited_state, cited_image, cited_caption, gallery, scores])
    return app


def launch(service: AppService, host: str = "127.0.0.1", port: int = 7860,
           auth: tuple[str, str] | None = None, block: bool = True) -> Any:
    """Serve the app: never a public share link; login when ``auth`` is given."""
    app = build_app(service)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host, server_port=port, share=False, auth=auth, show_error=False, quiet=True,
        max_file_size=f"{int(service.config.ui.max_upload_mb)}mb", prevent_thread_lock=not block,
        footer_links=[], css=CSS, allowed_paths=[],
        blocked_paths=[str(p / "docstore.sqlite") for p in service.collections.values()],
        inbrowser=False, mcp_server=False, pwa=False, ssr_mode=False,
    )
    return app


def collections_from(config: Any, index: str | Path | None) -> dict[str, Path]:
    """``--index DIR`` (named after its folder) plus the config's ``ui.collections``."""
    out: dict[str, Path] = {}
    if index is not None:
        p = Path(index)
        out[p.resolve().name or "default"] = p
    for name, path in (config.ui.collections or {}).items():
        out.setdefault(str(name), Path(path).expanduser())
    return out
