"""``ingest_many``: a pool of worker processes where no file can hang or crash the batch.

Each worker takes one document at a time over a pipe. The parent watches every busy worker's
deadline (``config.timeout_s`` per document): a worker that runs past it, or dies (a segfault
in a PDF library), is killed and replaced, and its file is recorded as an error. Results come
back in input order. Identical files (same SHA-256) are ingested once; ``skip_ids`` lets a
caller skip documents it already has (resumable runs).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Container, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from mmrag.errors import CorruptDocument, DocumentTimeout, MmragError
from mmrag.types import Document

GRACE_S = 2.0  # the worker's own between-page timeout check gets to report first
STARTUP_S = 120.0  # a new worker gets this long to import its libraries before its clock starts


@dataclass
class IngestResult:
    """One input file's outcome: a Document, or an error dict ``{"type","message"}``."""

    path: Path
    document: Document | None
    error: dict | None
    seconds: float
    doc_id: str | None = None
    skipped: bool = False  # already known (``skip_ids``) or a duplicate of an earlier file

    @property
    def ok(self) -> bool:
        return self.error is None


def _work(path: str, config: Any, password: str | None) -> tuple[Document | None, dict | None]:
    from mmrag.ingest.document import load_document

    try:
        return load_document(path, config=config, password=password), None
    except MmragError as e:
        return None, e.to_dict()
    except Exception as e:  # a bug or a reader failure we did not map: still one file's error
        return None, {"type": type(e).__name__, "message": f"{path}: {e}"}


def _worker_main(conn: Any, config: Any, threads: int) -> None:
    os.environ["MMRAG_OCR_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    # imports count as start-up, not as the first file's time
    import pymupdf  # noqa: F401

    import mmrag.ingest.document  # noqa: F401
    import mmrag.ingest.page  # noqa: F401
    import mmrag.ingest.tables  # noqa: F401

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        idx, path, password = task
        conn.send(("start", idx))
        t0 = time.perf_counter()
        doc, err = _work(path, config, password)
        try:
            conn.send(("done", idx, doc, err, time.perf_counter() - t0))
        except Exception as e:  # e.g. a result that cannot be pickled
            conn.send(("done", idx, None, {"type": type(e).__name__, "message": f"{path}: {e}"},
                       time.perf_counter() - t0))


class _Worker:
    def __init__(self, ctx: Any, config: Any, threads: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, config, threads), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple[int, str] | None = None
        self.deadline = 0.0
        self.started = 0.0

    def give(self, idx: int, path: str, password: str | None, timeout: float) -> None:
        self.conn.send((idx, path, password))
        self.task = (idx, path)
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + STARTUP_S  # until the worker says it has started

    def begin(self) -> None:
        """The worker took the task: its per-document clock starts now."""
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout + GRACE_S if self.timeout else float("inf")

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except Exception:
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        self.conn.close()


def _password_for(path: Path, passwords: dict | None, config: Any) -> str | None:
    for table in (passwords or {}, config.passwords or {}):
        for key in (str(path), path.name, str(path.resolve())):
            if key in table:
                return table[key]
    return config.password


def ingest_many(paths: list[Path], config: Any, *, workers: int = 1, passwords: dict | None = None,
                progress: bool = True, skip_ids: Container[str] | None = None,
                timeout_s: float | None = None, threads: int | None = None) -> Iterator[IngestResult]:
    """Ingest ``paths`` in ``workers`` processes; yields one ``IngestResult`` per path, in order.

    Each document runs under ``timeout_s`` (default ``config.timeout_s``): past it, or when
    its worker crashes, the worker is replaced and the file gets a typed error. ``passwords``
    maps a path or file name to its password (then ``config.passwords``, then
    ``config.password``). ``threads`` (OCR and BLAS threads per worker) defaults to this
    machine's CPUs shared among the workers.
    """
    from tqdm.auto import tqdm

    from mmrag.ingest.source import file_doc_id

    paths = [Path(p) for p in paths]
    timeout = config.timeout_s if timeout_s is None else timeout_s
    workers = max(1, int(workers))
    results: dict[int, IngestResult] = {}
    pending: list[tuple[int, Path, str | None]] = []
    seen: dict[str, int] = {}
    ids: dict[int, str | None] = {}
    for i, p in enumerate(paths):
        try:
            did = file_doc_id(p) if p.is_file() else None
        except OSError:
            did = None
        ids[i] = did
        if did is not None and skip_ids is not None and did in skip_ids:
            results[i] = IngestResult(p, None, None, 0.0, doc_id=did, skipped=True)
        elif did is not None and did in seen:
            results[i] = IngestResult(p, None, None, 0.0, doc_id=did, skipped=True)
        else:
            if did is not None:
                seen[did] = i
            pending.append((i, p, _password_for(p, passwords, config)))

    bar = tqdm(total=len(paths), unit="doc", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    pages_done = 0
    t_start = time.perf_counter()
    next_out = 0

    def record(i: int, res: IngestResult) -> None:
        nonlocal pages_done
        results[i] = res
        if res.document is not None:
            pages_done += res.document.page_count
        elapsed = max(time.perf_counter() - t_start, 1e-9)
        bar.update(1)
        bar.set_postfix(pages=pages_done, pages_s=f"{pages_done / elapsed:.1f}", refresh=False)

    bar.update(len(results))
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # the server imports these once; each worker forked from it starts in milliseconds
        ctx.set_forkserver_preload(["pymupdf", "mmrag.ingest.batch", "mmrag.ingest.document", "mmrag.ingest.page"])
    else:
        ctx = mp.get_context("spawn")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    pool: list[_Worker] = []
    queue = list(reversed(pending))
    try:
        while queue or any(w.task for w in pool):
            while queue and (len(pool) < min(workers, len(pending)) or any(w.task is None for w in pool)):
                w = next((w for w in pool if w.task is None), None)
                if w is None:
                    w = _Worker(ctx, config, threads)
                    pool.append(w)
                i, p, pw = queue.pop()
                w.give(i, str(p), pw, timeout)
            busy = [w for w in pool if w.task]
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in busy) - now) if busy else 0.0
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=min(wait_s, 1.0))
            for w in busy:
                idx, path = w.task  # type: ignore[misc]
                if w.conn in ready:
                    try:
                        while w.task and w.conn.poll():
                            msg = w.conn.recv()
                            if msg[0] == "start":
                                w.begin()
                            else:
                                _, _, doc, err, secs = msg
                                record(idx, IngestResult(Path(path), doc, err, secs, doc_id=ids[idx]))
                                w.task = None
                    except (EOFError, OSError):
                        pass  # died while sending: handled below as a crash
                    if w.task is None:
                        continue
                if w.proc.sentinel in ready or not w.proc.is_alive():
                    code = w.proc.exitcode
                    w.kill()
                    err = CorruptDocument(f"the PDF reader crashed on this file (worker exit code {code}); "
                                          "the file is likely damaged", path=path).to_dict()
                    record(idx, IngestResult(Path(path), None, err, time.monotonic() - w.started, doc_id=ids[idx]))
                    pool.remove(w)
                elif time.monotonic() > w.deadline:
                    w.kill()
                    err = DocumentTimeout(f"ingestion took longer than {timeout:g} s and was stopped; raise "
                                          "ingest.timeout_s for very long or scanned documents", path=path).to_dict()
                    record(idx, IngestResult(Path(path), None, err, time.monotonic() - w.started, doc_id=ids[idx]))
                    pool.remove(w)
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
        while next_out in results:
            yield results.pop(next_out)
            next_out += 1
    finally:
        for w in pool:
            if w.task:
                w.kill()
            else:
                w.stop()
        bar.close()
