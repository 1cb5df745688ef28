"""On-disk layout and crash-safe writes: temp name, fsync, rename, fsync the folder.

An index folder holds ``docstore.sqlite`` (the commit point: documents, pages, chunks and the
list of live segment folders), ``segments/`` (immutable vector folders, one per commit or
merge), ``bm25/`` (one immutable BM25 state per commit) and ``manifest.json`` (format version,
per-field encoder identity, dims, counts, checksums), rewritten atomically after each commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DOCSTORE = "docstore.sqlite"
SEGMENTS = "segments"
BM25_DIR = "bm25"
LOCK = "write.lock"


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def new_tmp_dir(parent: Path, prefix: str) -> Path:
    """A fresh hidden folder to fill before `publish_dir` renames it into place."""
    parent.mkdir(parents=True, exist_ok=True)
    d = parent / f".{prefix}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    d.mkdir()
    return d


def publish_dir(tmp: Path, final: Path) -> Path:
    """fsync every file in ``tmp``, then rename it to ``final`` and fsync the parent."""
    for p in tmp.iterdir():
        if p.is_file():
            fsync_file(p)
    fsync_dir(tmp)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    return final


def unique_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:06d}-{secrets.token_hex(3)}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dir_checksums(path: Path) -> dict[str, dict]:
    """{file name: {"sha256", "bytes"}} for the files of one immutable folder."""
    return {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(path.iterdir()) if p.is_file()}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
