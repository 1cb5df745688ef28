"""YAML presets → typed config. Unknown keys are an error that names the key.

Component sections (``reranker``, ``generator``, each field's encoder) carry a ``name`` from
the registry and ``options`` that go to the backend's constructor, so backends own their
settings and the schema here stays small.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError

DEFAULT_CONFIG = "configs/default.yaml"


@dataclass
class ComponentConfig:
    """A registered backend by name, with the keyword options its constructor takes."""

    name: str
    options: dict = field(default_factory=dict)


@dataclass
class IngestConfig:
    dpi: int = 144
    ocr: str = "auto"  # auto | always | never
    ocr_min_chars: int = 50  # pages with less text go through OCR (auto)
    ocr_image_fraction: float = 0.5  # ...and pages whose image-only area exceeds this share
    ocr_dpi: int = 200  # OCR rendering resolution (capped at 2000 px on the long side)
    # rapidocr settings by its own config keys, over mmrag's (ingest/ocr.py), e.g.
    # {"Det.limit_side_len": 960} (faster, misses more small text) or {"Global.use_cls": true}
    # (rapidocr's per-line angle classifier instead of mmrag's per-page orientation check)
    ocr_options: dict = field(default_factory=dict)
    max_pages: int = 5000
    max_bytes: int = 512 * 1024 * 1024
    timeout_s: float = 60.0
    workers: int = 1
    chunk_words: int = 200
    tables: bool = True
    password: str | None = None
    passwords: dict = field(default_factory=dict)  # file name or path → password


@dataclass
class FieldConfig:
    """One named vector field of the index: which encoder reads which input."""

    name: str = "text"
    encoder: str = "minilm"
    input: str = "chunks"  # chunks (chunk text) | pages (page image/text as the encoder reads it)
    options: dict = field(default_factory=dict)


@dataclass
class IndexConfig:
    dense: str = "flat"  # flat | hnsw | ivfpq | auto (flat below 20k vectors per segment, HNSW above)
    hnsw_m: int = 32
    ivf_nlist: int = 1024
    pq_m: int = 16
    sparse: bool = True  # BM25 beside the vectors
    page_bm25: bool = False  # also BM25 over whole page texts: a page-level channel "bm25-page"
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    fusion: str = "minmax"  # minmax | rrf
    weights: dict = field(default_factory=dict)  # field name (or "bm25") → weight
    rrf_k: int = 60
    page_score: str = "max"  # how chunk scores make a page score
    candidates: int = 100  # first-stage depth per field before fusion
    store_images: bool = False  # write page images (PNG) into the index folder
    device: str = "cpu"  # cpu | gpu (faiss-gpu) | auto (the GPU when faiss-gpu finds one)
    hnsw_ef_search: int = 64
    ivf_nprobe: int = 16
    commit_docs: int = 200  # a writer commits after this many documents...
    commit_seconds: float = 60.0  # ...or this many seconds, whichever comes first
    max_segments: int = 8  # more vector segments per field than this → merge the smallest
    verify_checksums: bool = True  # SHA-256 of each index file once per process (sizes: always)
    vectors: str = "faiss"  # faiss (segments in the index folder) | milvus (see milvus_uri)
    milvus_uri: str = "milvus.db"  # a .db path: Milvus Lite (relative: inside the index folder); http://HOST:19530: a server
    milvus_index: str = "FLAT"  # FLAT (exact) | HNSW | AUTOINDEX (Milvus server / Zilliz)


@dataclass
class SearchConfig:
    k: int = 10
    rerank_depth: int = 30  # how many first-stage pages a reranker sees
    max_query_chars: int = 4096


@dataclass
class AskConfig:
    contexts: int = 3  # pages that reach the generator


@dataclass
class UIConfig:
    max_upload_mb: int = 100
    allowed_types: list = field(default_factory=lambda: ["pdf", "png", "jpg", "jpeg", "tif", "tiff"])
    collections: dict = field(default_factory=dict)  # name → index folder
    rerankers: list = field(default_factory=list)  # names offered in the app ([] = all)
    generators: list = field(default_factory=list)
    host: str = "127.0.0.1"  # a non-loopback host here is refused unless `mmrag serve --host` repeats it
    port: int = 7860


@dataclass
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    fields: list[FieldConfig] = field(default_factory=lambda: [FieldConfig()])
    index: IndexConfig = field(default_factory=IndexConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    reranker: ComponentConfig | None = None
    generator: ComponentConfig = field(default_factory=lambda: ComponentConfig("extractive"))
    ask: AskConfig = field(default_factory=AskConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    source: str | None = None  # where it was read from

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d


def _build(tp: Any, value: Any, where: str) -> Any:
    """Build ``tp`` from plain YAML data, refusing unknown keys."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _build(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp is ComponentConfig:
            return ComponentConfig(value)
        if not isinstance(value, dict):
            raise ConfigError(f"config: '{where}' must be a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.name != "source"}
        for key in value:
            if key not in known:
                raise ConfigError(
                    f"config: unknown key '{where}.{key}' (allowed: {', '.join(sorted(known))})".replace("'.", "'")
                )
        return tp(**{k: _build(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"config: '{where}' must be a list")
        return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp in (int, float, str, bool):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"config: '{where}' must be {tp.__name__}, got {value!r}")
        return value
    return value


def from_dict(data: dict | None, source: str | None = None) -> Config:
    cfg = _build(Config, data or {}, "")
    cfg.source = source
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    checks = [
        (cfg.ingest.ocr in ("auto", "always", "never"), "ingest.ocr must be auto, always or never"),
        (cfg.index.dense in ("flat", "hnsw", "ivfpq", "auto"), "index.dense must be flat, hnsw, ivfpq or auto"),
        (cfg.index.fusion in ("minmax", "rrf"), "index.fusion must be minmax or rrf"),
        (cfg.index.device in ("cpu", "gpu", "auto"), "index.device must be cpu, gpu or auto"),
        (cfg.index.page_score in ("max", "sum"), "index.page_score must be max or sum"),
        (cfg.index.candidates >= 1 and cfg.index.commit_docs >= 1, "index.candidates and index.commit_docs must be positive"),
        (cfg.index.vectors in ("faiss", "milvus"), "index.vectors must be faiss or milvus"),
        (cfg.index.milvus_index in ("FLAT", "HNSW", "AUTOINDEX"), "index.milvus_index must be FLAT, HNSW or AUTOINDEX"),
        (cfg.index.max_segments >= 1, "index.max_segments must be at least 1"),
        (len({f.name for f in cfg.fields}) == len(cfg.fields), "fields must have unique names"),
        (all(f.input in ("chunks", "pages") for f in cfg.fields), "fields[].input must be chunks or pages"),
        (cfg.ingest.dpi > 0 and cfg.ingest.workers >= 1, "ingest.dpi and ingest.workers must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"config: {message}")


def resolve_path(path: str | Path | None) -> Path | None:
    """The config file to read: the given path, else ./configs/default.yaml, else the packaged one."""
    if path is not None and str(path) != DEFAULT_CONFIG:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    local = Path(DEFAULT_CONFIG)
    if local.is_file():
        return local
    packaged = resources.files("mmrag.configs").joinpath("default.yaml")
    return Path(str(packaged)) if packaged.is_file() else None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Read a YAML preset (default: configs/default.yaml) and apply ``overrides``."""
    import yaml

    p = resolve_path(path)
    data: dict = {}
    if p is not None:
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config {p} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {p} must be a mapping at the top level")
    if overrides:
        data = _merge(data, overrides)
    return from_dict(data, str(p) if p else None)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
