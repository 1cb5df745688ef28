"""``mmrag index --engine ray``: ingestion and encoding as a Ray Data pipeline.

The pipeline has two stages. Ingestion runs as Ray tasks, one CPU and one document each; a task
ingests its file with the local engine's ``ingest_many`` (one worker process), so a document
that hangs, crashes the PDF reader or is damaged becomes the same typed error as locally and the
batch goes on. Encoding runs in a pool of actors that each load the field encoders once; an
actor asks for a GPU where the cluster has GPUs. The vectors come back to this process, which
stays the one index writer (``Index.add(..., vectors=...)``, its file lock, its atomic
commits), so what is on disk, ``--resume`` and the skip-unchanged rule are the local engine's.

Files are read by path on whichever node runs the task: on a cluster, give paths every node
can read (a shared file system). ``import ray`` happens only here.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmrag.config import FieldConfig
from mmrag.errors import ConfigError, IndexMismatch, MissingDependency, MmragError

ENCODE_DOCS = 8  # documents per call to an encoder actor


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or MissingDependency with the pip command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependency("the Ray engine needs ray[data], which is not installed: "
                                "pip install 'mmrag[ray]'") from None
    return ray


class _Identity:
    """What the index writer needs of an encoder whose vectors were computed elsewhere."""

    def __init__(self, identity: dict):
        self.identity = dict(identity)
        self.multivector = bool(identity.get("multivector"))


class ReportedIdentities:
    """The writer's encoder factory under Ray: the identity each encoder actor reported.

    The writer checks it against the manifest at commit, as it checks a model it loaded itself,
    without loading the model here; actors that disagree (another model revision on a node)
    stop the run before anything of theirs is committed.
    """

    def __init__(self, fallback: Any) -> None:
        self.seen: dict[str, dict] = {}
        self.fallback = fallback  # the model itself, for a commit that only deletes (nothing was encoded)

    def record(self, identities: dict[str, dict]) -> None:
        for name, identity in identities.items():
            first = self.seen.setdefault(name, identity)
            if first != identity:
                raise IndexMismatch(f"the Ray encoder actors disagree on field '{name}': {first} vs {identity}; "
                                    "install the same model and mmrag version on every node")

    def __call__(self, f: FieldConfig) -> Any:
        return _Identity(self.seen[f.name]) if f.name in self.seen else self.fallback(f)


def _ingest(row: dict, *, config: Any, passwords: dict | None, chunk_words: int) -> dict:
    """Ray task: one file → (IngestResult, chunks), pickled."""
    from mmrag.api import chunk_document
    from mmrag.ingest.batch import ingest_many

    [result] = ingest_many([Path(row["path"])], config, workers=1, passwords=passwords, progress=False, threads=1)
    chunks = chunk_document(result.document, chunk_words) if result.document is not None else None
    return {"i": row["i"], "payload": pickle.dumps((result, chunks), protocol=5)}


class _Encode:
    """Ray actor: loads each field's encoder once, then encodes the chunks or pages of documents."""

    def __init__(self, fields: list[FieldConfig], factory: Any, backends: list[Any]):
        from mmrag.encoders import REGISTRY

        for b in backends:  # encoders registered at run time in the driver (plugins, tests)
            if b.name not in REGISTRY.names():
                REGISTRY.register(b)
        self.fields = fields
        self.encoders = {f.name: factory(f) for f in fields}
        self.identity = {name: dict(enc.identity) for name, enc in self.encoders.items()}

    def __call__(self, batch: dict) -> dict:
        from mmrag.indexes.index import _batched

        rows = [pickle.loads(p) for p in batch["payload"]]
        vectors: list[dict[str, list] | None] = [{} if r.document is not None else None for r, _ in rows]
        for f in self.fields:
            enc = self.encoders[f.name]
            if f.input == "chunks":  # the writer's own batch sizes (Index._encode_pending)
                items = [[c.index_text for c in chunks or []] for _, chunks in rows]
                fn, size = enc.encode_text, 256
            else:
                items = [list(r.document.pages) if r.document is not None else [] for r, _ in rows]
                fn, size = enc.encode_page, 16
            out = _batched(fn, [x for group in items for x in group], size, False, "")
            start = 0
            for k, group in enumerate(items):
                if vectors[k] is not None:
                    vectors[k][f.name] = out[start:start + len(group)]
                start += len(group)
        payloads = []
        for (result, chunks), vecs in zip(rows, vectors):
            if result.document is not None:
                for page in result.document.pages:
                    page._image = None  # rendered for an image encoder: not worth shipping back
            payloads.append(pickle.dumps((result, chunks, vecs, self.identity), protocol=5))
        return {"i": batch["i"], "payload": payloads}


def _connect(ray: Any, address: str | None, workers: int) -> bool:
    """Join the cluster at ``address``, or start a quiet local Ray with ``workers`` CPUs;
    True when this call started it (and so shuts it down)."""
    if ray.is_initialized():
        return False  # the caller's Ray (an app, a test): use it as it is
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=workers, **quiet)  # a new Ray, whatever `ray start` left behind
    except ConnectionError as e:
        auth = "Authentication" in f"{e} {e.__cause__} {e.__context__}"
        hint = ("; the cluster wants its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or ~/.ray/auth_token)"
                if auth else "; start it (`ray start --head`) or check --ray-address")
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({e}){hint}") from None
    return True


def _mmrag_error(err: BaseException) -> MmragError | None:
    """The mmrag error a Ray task or actor raised, out of Ray's wrappers."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, MmragError):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def ingest_and_encode(rag: Any, files: list[Path], *, workers: int | None, passwords: dict | None,
                      address: str | None, identities: ReportedIdentities) -> Iterator[tuple[Any, list, dict | None]]:
    """Yield ``(IngestResult, chunks, vectors by field)`` per file, in input order.

    Ray starts only when there is something to ingest (a resumed or unchanged run needs none).
    """
    if not files:
        return
    ray = require_ray()
    from mmrag.encoders import REGISTRY

    started = _connect(ray, address, workers or rag.config.ingest.workers)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start)
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    try:
        ctx.execution_options.preserve_order = True  # report.json lists documents as the local engine does
        ctx.enable_progress_bars, ctx.print_on_execution_start = False, False  # mmrag draws its own
        data_log.setLevel(logging.ERROR)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        # With GPUs an actor per GPU; without, one actor that encodes beside the ingestion tasks
        # without taking one of their CPUs (as the local engine's writer encodes beside its workers).
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=gpus) if gpus else ray.data.ActorPoolStrategy(size=1)
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 0}
        ds = ray.data.from_items([{"i": i, "path": str(f)} for i, f in enumerate(files)],
                                 override_num_blocks=len(files))
        ds = ds.map(_ingest, fn_kwargs={"config": rag.config.ingest, "passwords": passwords,
                                        "chunk_words": rag.config.ingest.chunk_words},
                    num_cpus=1,  # on a cluster, --workers caps the ingestion tasks in flight
                    compute=ray.data.TaskPoolStrategy(size=workers) if address and workers else None)
        ds = ds.map_batches(_Encode, batch_size=ENCODE_DOCS, compute=pool,
                            fn_constructor_kwargs={"fields": list(rag.config.fields), "factory": rag._factory,
                                                   "backends": [REGISTRY.get(n) for n in REGISTRY.names()]},
                            **resources)
        try:
            for row in ds.iter_rows():
                result, chunks, vectors, identity = pickle.loads(row["payload"])
                if vectors is not None:
                    identities.record(identity)
                yield result, chunks, vectors
        except MmragError:
            raise
        except Exception as e:
            cause = _mmrag_error(e)
            if cause is not None:
                raise cause from None
            raise
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        data_log.setLevel(saved_level)
        if started:
            ray.shutdown()


__all__ = ["ReportedIdentities", "ingest_and_encode", "require_ray"]
