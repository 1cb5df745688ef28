"""Batch indexing for operators: live progress (pages/s, ETA), a summary table, report.json, resume.

`mmrag index` drives `RAG.index` through these helpers. Resuming needs no special machinery in
the index: `RAG.index` commits in batches and skips documents whose bytes are already indexed,
so a run killed at any point continues from its last commit. What this module adds is the run
journal (``run.json``: the paths and options of the last run, and whether it finished), so
``mmrag index --index DIR --resume`` picks up without the operator repeating the paths.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError

RUN_JOURNAL = "run.json"
REPORT = "report.json"


# --- the run journal -------------------------------------------------------------------------------
def _write_json(path: Path, data: Any) -> None:
    """Atomic JSON write (temp file in the same folder, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def start_run(index_dir: Path, paths: list[str], options: dict) -> dict:
    """Record what this run is about to index, before it starts."""
    run = {"paths": [str(Path(p).resolve()) for p in paths], "options": options, "started": time.time(),
           "finished": None, "pid": os.getpid(), "host": socket.gethostname()}
    _write_json(index_dir / RUN_JOURNAL, run)
    return run


def finish_run(index_dir: Path, run: dict, report: dict) -> None:
    """Mark the run finished and write ``report.json`` (every document, every failure)."""
    _write_json(index_dir / REPORT, report)
    _write_json(index_dir / RUN_JOURNAL, dict(run, finished=time.time()))


def resume_run(index_dir: Path) -> dict:
    """The journal of the last run, which ``--resume`` continues; refuses when there is none."""
    path = index_dir / RUN_JOURNAL
    if not path.is_file():
        raise ConfigError(f"nothing to resume in {index_dir}: no earlier `mmrag index` run was recorded there; "
                          "give the PATHs to index")
    try:
        run = json.loads(path.read_text())
    except ValueError:
        raise ConfigError(f"{path} is damaged; run `mmrag index PATH... --index {index_dir}` with the paths instead") from None
    if run.get("finished"):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["finished"]))
        raise ConfigError(f"the last run into {index_dir} finished at {when}: nothing to resume; "
                          "run without --resume to pick up new or changed files")
    return run


# --- live progress -----------------------------------------------------------------------------------
class BatchProgress:
    """A rich progress bar over documents that also shows pages indexed and pages per second."""

    def __init__(self, total: int, enabled: bool = True):
        self.total = total
        self.enabled = enabled
        self.pages = 0
        self.errors = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "BatchProgress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TextColumn("docs"),
                TextColumn("{task.fields[pages]} pages · {task.fields[rate]} pages/s · {task.fields[errors]} failed"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False, refresh_per_second=4)
            self._progress.__enter__()
            self._task = self._progress.add_task("index", total=self.total, pages=0, rate="0.0", errors=0)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, entry: dict) -> None:
        """`RAG.index`'s ``on_document`` callback: one finished (or skipped) document."""
        if entry.get("status") == "error":
            self.errors += 1
        elif not entry.get("skipped") and not entry.get("action"):
            self.pages += int(entry.get("pages") or 0)
        if self._progress is not None:
            rate = self.pages / max(time.monotonic() - self.started, 1e-9)
            self._progress.update(self._task, advance=1, pages=self.pages, rate=f"{rate:.1f}", errors=self.errors)


# --- the summary ----------------------------------------------------------------------------------------
def summarize(report: dict, seconds: float) -> dict:
    """Counts for the summary table: ok, unchanged, failed by error type, pages, OCR pages, time."""
    docs = report.get("documents", [])
    new = [d for d in docs if d["status"] == "ok" and not d.get("skipped") and not d.get("action")]
    failed = Counter(d["error"]["type"] for d in docs if d["status"] == "error" and d.get("error"))
    pages = sum(d.get("pages", 0) for d in new)
    return {
        "documents": len(docs),
        "indexed": len(new),
        "unchanged_or_skipped": sum(1 for d in docs if d["status"] == "ok" and d.get("skipped")),
        "failed": sum(failed.values()),
        "failed_by_type": dict(sorted(failed.items(), key=lambda kv: (-kv[1], kv[0]))),
        "pages": pages,
        "ocr_pages": sum(d.get("ocr_pages", 0) for d in new),
        "seconds": round(seconds, 2),
        "pages_per_second": round(pages / seconds, 2) if seconds > 0 else 0.0,
    }


def summary_table(summary: dict) -> Any:
    """The summary as a rich Table."""
    from rich.table import Table

    table = Table(title="mmrag index", show_header=True)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("documents seen", str(summary["documents"]))
    table.add_row("indexed (new or changed)", str(summary["indexed"]))
    table.add_row("unchanged or duplicate", str(summary["unchanged_or_skipped"]))
    table.add_row("failed", str(summary["failed"]))
    for kind, n in summary["failed_by_type"].items():
        table.add_row(f"  {kind}", str(n))
    table.add_row("pages", str(summary["pages"]))
    table.add_row("OCR pages", str(summary["ocr_pages"]))
    table.add_row("time", f"{summary['seconds']:.1f} s")
    table.add_row("pages/s", f"{summary['pages_per_second']:.1f}")
    return table


def print_summary(summary: dict) -> None:
    from rich.console import Console

    Console(stderr=True).print(summary_table(summary))


# --- watching and comparing builds -----------------------------------------------------------------------------
def committed_documents(index_dir: str | Path) -> int:
    """Documents durably committed in an index folder (0 when there is no index yet); safe to
    call while a writer is running, e.g. to decide when to kill it in a crash test."""
    import sqlite3

    db = Path(index_dir) / "docstore.sqlite"
    if not db.is_file():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM documents").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def index_contents(index_dir: str | Path) -> dict:
    """What an index holds, keyed by stable names: pages and each field's vector per chunk/page.

    Integer row ids depend on commit order, so two builds of the same files (one resumed after
    a crash, one not) are compared through ``doc_id#page`` and chunk ids instead.
    """
    import numpy as np

    from mmrag.indexes.docstore import DocStore
    from mmrag.indexes.layout import DOCSTORE, MANIFEST, SEGMENTS

    root = Path(index_dir)
    inputs = {f["name"]: f["input"] for f in json.loads((root / MANIFEST).read_text())["fields"]}
    store = DocStore(root / DOCSTORE, readonly=True)
    try:
        con = store.con
        pages = {f"{r['doc_id']}#{r['page_number']}": (r["content_hash"], r["text"])
                 for r in con.execute("SELECT doc_id, page_number, content_hash, text FROM pages")}
        names = {
            "pages": {r["id"]: f"{r['doc_id']}#{r['page_number']}"
                      for r in con.execute("SELECT id, doc_id, page_number FROM pages")},
            "chunks": {r["id"]: r["chunk_id"] for r in con.execute("SELECT id, chunk_id FROM chunks")},
        }
        vectors: dict[str, dict[str, Any]] = {}
        for seg in store.segments():
            if seg["kind"] == "multivector":
                continue
            folder = root / SEGMENTS / seg["name"]
            ids = np.load(folder / "ids.npy", allow_pickle=False)
            vecs = np.load(folder / "vectors.npy", allow_pickle=False)
            key = names[inputs[seg["field"]]]
            field = vectors.setdefault(seg["field"], {})
            for i, v in zip(ids.tolist(), vecs):
                if i in key:  # rows of deleted documents stay in old segments until a merge
                    field[key[i]] = v
        from mmrag.indexes import milvus

        record = milvus.record_of(store)
        if record is not None:  # index.vectors: milvus — the same, read from the collections
            with milvus.MilvusVectors(milvus.resolve_uri(record["uri"], root), record["collection"]) as mv:
                for name, field_input in inputs.items():
                    if mv.exists(name) and mv._multivector(name):
                        continue  # token matrices, skipped as in segments
                    key = names[field_input]
                    got = mv.vectors(name, np.array([i for i in mv.ids(name) if int(i) in key], np.int64))
                    vectors[name] = {key[i]: v for i, v in got.items()}
        docs = {d["doc_id"]: (d["path"], d["file_sha256"]) for d in store.documents()}
    finally:
        store.close()
    return {"documents": docs, "pages": pages, "vectors": vectors}


def compare_contents(a: dict, b: dict) -> dict:
    """Same documents, same pages (text and hash), same vector keys, and the largest vector difference.

    Also says where two builds differ: documents in only one, pages whose extracted text differs,
    and the largest vector difference over chunks whose page text is identical in both (what the
    index itself is answerable for, apart from ingestion).
    """
    import numpy as np

    same_keys = all(set(a["vectors"].get(f, {})) == set(b["vectors"].get(f, {}))
                    for f in set(a["vectors"]) | set(b["vectors"]))
    only_a = sorted(a["documents"][d][0] for d in set(a["documents"]) - set(b["documents"]))
    only_b = sorted(b["documents"][d][0] for d in set(b["documents"]) - set(a["documents"]))
    common = set(a["documents"]) & set(b["documents"])
    differing = sorted(k for k in a["pages"] if k.split("#")[0] in common and a["pages"][k] != b["pages"].get(k))
    diff, diff_same_pages = 0.0, 0.0
    for f, va in a["vectors"].items():
        vb = b["vectors"].get(f, {})
        for key, v in va.items():
            if key in vb:
                d = float(np.max(np.abs(v - vb[key])))
                diff = max(diff, d)
                if "#".join(key.split("#")[:2]) not in differing and key.split("#")[0] in common:
                    diff_same_pages = max(diff_same_pages, d)
    return {
        "same_documents": a["documents"] == b["documents"],
        "same_pages": a["pages"] == b["pages"],
        "same_vector_keys": same_keys,
        "max_abs_vector_diff": diff if same_keys else None,
        "pages": len(a["pages"]),
        "vectors": {f: len(v) for f, v in a["vectors"].items()},
        "documents_only_in_a": only_a,
        "documents_only_in_b": only_b,
        "pages_with_different_text": [f"{a['documents'][k.split('#')[0]][0]}#{k.split('#')[1]}" for k in differing],
        "max_abs_vector_diff_where_page_text_is_identical": diff_same_pages,
        "page_text_differences": [_first_difference(k, a, b) for k in differing[:20]],
    }


def _first_difference(key: str, a: dict, b: dict) -> dict:
    """Where one page's text first differs between two builds, with a little context each side."""
    ta, tb = a["pages"][key][1], (b["pages"].get(key) or ("", ""))[1]
    i = next((n for n, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
    return {"page": f"{a['documents'][key.split('#')[0]][0]}#{key.split('#')[1]}", "chars_a": len(ta),
            "chars_b": len(tb), "at": i, "a": ta[max(0, i - 40):i + 80], "b": tb[max(0, i - 40):i + 80]}
