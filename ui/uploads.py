"""Upload checks for the app: name, size and type (by magic bytes), and a write that cannot escape.

Pure functions over bytes and paths, so they are tested without a browser or a model. Every
refusal is an `UploadRejected` whose message tells the person what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from mmrag.errors import UploadRejected
from mmrag.ingest.source import sniff  # the same magic-byte check ingestion uses

UPLOAD_DIR = "uploads"  # sub-folder of the index folder that holds uploaded originals

_SUFFIX_KIND = {"pdf": "pdf", "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff"}
_MAX_NAME = 120
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A plain file name for ``name``; names that try to leave their folder are refused.

    Path separators, ``..``, drive letters and control characters are refused rather than
    silently rewritten (a name like ``../../x.pdf`` is an attack, not a typo); other odd
    characters (spaces, accents, quotes) become ``_``.
    """
    if not name or not name.strip():
        raise UploadRejected("the uploaded file has no name; give it one ending in .pdf or an image suffix")
    if any(ord(c) < 32 for c in name) or "/" in name or "\\" in name or ":" in name:
        raise UploadRejected(f"file name {name!r} contains a path or control characters; "
                             "upload the file under a plain name like report.pdf")
    if name.strip() in (".", ".."):
        raise UploadRejected(f"file name {name!r} is not allowed; rename it to a plain name like report.pdf")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem, dot, suffix = ascii_name.rpartition(".")
    if not dot:
        stem, suffix = ascii_name, ""
    stem = _SAFE_CHARS.sub("_", stem).strip("._-") or "upload"
    suffix = _SAFE_CHARS.sub("", suffix).lower()
    stem = stem[: _MAX_NAME - len(suffix) - 1]
    return f"{stem}.{suffix}" if suffix else stem


def check_upload(name: str, data: bytes, *, max_bytes: int, allowed_types: list[str]) -> str:
    """Validate one upload and return its safe file name, or raise `UploadRejected`."""
    clean = safe_name(name)
    allowed = [t.lower().lstrip(".") for t in allowed_types]
    suffix = clean.rpartition(".")[2].lower() if "." in clean else ""
    if suffix not in allowed or suffix not in _SUFFIX_KIND:
        raise UploadRejected(f"{clean}: files of type '.{suffix}' are not accepted; "
                             f"upload one of: {', '.join('.' + t for t in allowed)}")
    if len(data) == 0:
        raise UploadRejected(f"{clean} is empty (0 bytes); upload the complete file")
    if len(data) > max_bytes:
        raise _too_big(clean, len(data), max_bytes)
    expected = _SUFFIX_KIND[suffix]
    found = sniff(data)
    if found != expected:
        what = f"its content is {found.upper()}" if found else "its content is not a known document format"
        raise UploadRejected(f"{clean} is named .{suffix} but {what}; upload a real "
                             f"{expected.upper()} file (renaming a file does not convert it)")
    return clean


def _too_big(name: str, size: int, max_bytes: int) -> UploadRejected:
    return UploadRejected(f"{name} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB "
                          "upload limit; split it or raise ui.max_upload_mb in the config")


def read_capped(path: str | Path, max_bytes: int) -> bytes:
    """Read a file, refusing it before reading when it is over ``max_bytes``."""
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise _too_big(p.name, size, max_bytes)
    return p.read_bytes()


def store_upload(index_dir: str | Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``<index_dir>/uploads/<name>`` atomically; never outside ``index_dir``.

    ``name`` must already be a safe name (see `check_upload`). The same bytes uploaded twice
    land on the same file; different bytes under a taken name get a short hash suffix, so an
    upload never overwrites another document.
    """
    root = Path(index_dir).resolve()
    folder = root / UPLOAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    if not folder.resolve().is_relative_to(root):
        raise UploadRejected(f"{folder} points outside the index folder; remove that link and retry")
    if name != safe_name(name):
        raise UploadRejected(f"file name {name!r} is not a safe name; check it with check_upload first")
    dest = folder / name
    if dest.exists():
        if dest.is_file() and dest.read_bytes() == data:
            return dest
        stem, dot, suffix = name.rpartition(".")
        tag = hashlib.sha256(data).hexdigest()[:8]
        dest = folder / (f"{stem}-{tag}.{suffix}" if dot else f"{name}-{tag}")
        if dest.exists() and dest.read_bytes() == data:
            return dest
    if not dest.resolve().parent == folder.resolve():
        raise UploadRejected(f"{name} would be written outside the uploads folder; rename it")
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
