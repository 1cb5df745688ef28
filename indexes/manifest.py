"""manifest.json: what an index is (format, encoders, dims) and what it holds (counts, checksums).

The doc store is the commit point; the manifest is rewritten atomically after every commit and
is what a user, a script or a loader reads to learn how the index was built.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from mmrag import __version__
from mmrag.config import FieldConfig, IndexConfig
from mmrag.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from mmrag.indexes.integrity import repair_hint
from mmrag.indexes.layout import FORMAT_VERSION, MANIFEST, write_json_atomic


def field_spec(f: FieldConfig) -> dict:
    """The config side of a field's identity (checked before any model is loaded)."""
    return {"name": f.name, "encoder": f.encoder, "input": f.input, "options": dict(f.options)}


def new_manifest(fields: list[FieldConfig], cfg: IndexConfig) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "mmrag_version": __version__,
        "created": time.time(),
        "commit": 0,
        "fields": [dict(field_spec(f), identity=None) for f in fields],
        "sparse": {"enabled": cfg.sparse, "k1": cfg.bm25_k1, "b": cfg.bm25_b, "stemmer": "english",
                   "stopwords": "en", "folder": None},
        "segments": [],
        "counts": {"documents": 0, "pages": 0, "chunks": 0},
    }


def read_manifest(index_dir: Path) -> dict:
    path = index_dir / MANIFEST
    if not path.is_file():
        raise IndexNotFound(f"no mmrag index at {index_dir} (manifest.json missing); "
                            f"build one with: mmrag index PATH... --index {index_dir}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f"{path} cannot be read ({e}); {repair_hint(index_dir)}") from None
    if not isinstance(data, dict):
        raise IndexCorrupt(f"{path} is not an mmrag manifest; {repair_hint(index_dir)}")
    version = data.get("format_version")
    if version is None:
        raise IndexCorrupt(f"{path} has no format_version; {repair_hint(index_dir)}")
    if version != FORMAT_VERSION:
        raise IndexMismatch(f"index {index_dir} has format version {version}; this mmrag reads version "
                            f"{FORMAT_VERSION}: rebuild it with mmrag index into a new folder")
    recorded = data.pop("checksum", None)
    if recorded is not None and recorded != _self_checksum(data):
        raise IndexCorrupt(f"{path} was altered after mmrag wrote it (its checksum does not match); "
                           f"{repair_hint(index_dir)}")
    return data


def _self_checksum(data: dict) -> str:
    """SHA-256 of the manifest without its own checksum, in a canonical JSON form."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(index_dir: Path, data: dict) -> None:
    body = {k: v for k, v in data.items() if k != "checksum"}
    write_json_atomic(index_dir / MANIFEST, dict(body, checksum=_self_checksum(body)))


def _describe(spec: dict) -> str:
    opts = f" {spec['options']}" if spec.get("options") else ""
    return f"'{spec['name']}' = {spec['encoder']}{opts} on {spec['input']}"


def check_fields(index_dir: Path, manifest: dict, fields: list[FieldConfig]) -> None:
    """Refuse a config whose fields (encoder, input, options) differ from the index's."""
    built = [{k: f[k] for k in ("name", "encoder", "input", "options")} for f in manifest["fields"]]
    wanted = [field_spec(f) for f in fields]
    if built != wanted:
        raise IndexMismatch(
            f"index {index_dir} was built with fields [{'; '.join(_describe(s) for s in built)}] but the "
            f"config asks for [{'; '.join(_describe(s) for s in wanted)}]; use the config the index was "
            "built with, or index into a new folder")


def check_identity(index_dir: Path, manifest: dict, field: str, identity: dict) -> None:
    """Refuse an encoder whose model, revision or dimension differ from the manifest's."""
    for f in manifest["fields"]:
        recorded = f.get("identity")
        if f["name"] == field and recorded is not None and recorded != identity:
            raise IndexMismatch(
                f"index {index_dir} field '{field}' was built with {recorded['model']} "
                f"({recorded['dim']}-d, revision {recorded.get('revision')}) but the encoder now loads "
                f"{identity['model']} ({identity['dim']}-d, revision {identity.get('revision')}); "
                "use the same model or rebuild the index into a new folder")
