"""Reading inputs: find files, sniff their format, check limits, open them with PyMuPDF.

Everything a user can get wrong here raises one of the typed ``DocumentError`` subclasses, so a
batch can record it and go on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.errors import (
    CorruptDocument,
    DocumentError,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    UnsupportedFormat,
)

if TYPE_CHECKING:
    from mmrag.config import IngestConfig

PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | set(IMAGE_SUFFIXES)

# Passwords that opened a file in this process, so Page.image() can render encrypted PDFs later.
_PASSWORDS: dict[str, str] = {}


@dataclass
class Source:
    """The bytes of one input, what they are, and where they came from."""

    data: bytes
    kind: str  # "pdf" | "png" | "jpeg" | "tiff"
    name: str  # path or given name, for messages and Document.path
    path: Path | None  # the file on disk (None for bytes not yet cached)

    @property
    def doc_id(self) -> str:
        return doc_id_of(self.data)


def doc_id_of(data: bytes) -> str:
    """The document id: first 16 hex digits of the SHA-256 of the bytes (identical files dedupe)."""
    return hashlib.sha256(data).hexdigest()[:16]


def file_doc_id(path: str | Path, chunk: int = 1 << 20) -> str:
    """``doc_id_of`` for a file, streamed so large files are not held twice in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def sniff(data: bytes, name: str = "") -> str | None:
    """The format from the magic bytes (PDF may have junk before ``%PDF-``), else from the name."""
    head = data[:1024]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if b"%PDF-" in head:
        return "pdf"
    if Path(name).suffix.lower() in PDF_SUFFIXES:
        return "pdf"  # a damaged PDF without its header: let the reader try to repair it
    return None


def read_source(source: str | Path | bytes, config: "IngestConfig", name: str | None = None) -> Source:
    """Read a path or bytes, enforce the byte limit, and identify the format."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<bytes>"
        path = None
    else:
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise DocumentError("no such file; check the path", path=label)
        if path.is_dir():
            raise UnsupportedFormat("is a folder; pass files, or use discover()/ingest_many for folders", path=label)
        size = path.stat().st_size
        if size > config.max_bytes:
            raise DocumentTooLarge(
                f"{size} bytes is over the limit of {config.max_bytes}; raise ingest.max_bytes to read it",
                path=label,
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DocumentError(f"cannot read the file ({e.strerror}); check its permissions", path=label) from None
    if not data:
        raise EmptyDocument("the file is empty (0 bytes)", path=label)
    if len(data) > config.max_bytes:
        raise DocumentTooLarge(
            f"{len(data)} bytes is over the limit of {config.max_bytes}; raise ingest.max_bytes to read it",
            path=label,
        )
    kind = sniff(data, label)
    if kind is None:
        raise UnsupportedFormat("not a PDF, PNG, JPEG or TIFF file; convert it to PDF first", path=label)
    return Source(data=data, kind=kind, name=label, path=path)


def cache_dir() -> Path:
    """Where bytes given to the API are kept so their pages can be rendered later."""
    from mmrag.bundled import cache_dir as mmrag_cache

    return mmrag_cache() / "blobs"


def persist_bytes(src: Source) -> Path:
    """Write bytes input to the cache (once per content) and return the file, for rendering."""
    suffix = ".pdf" if src.kind == "pdf" else "." + src.kind
    target = cache_dir() / f"{src.doc_id}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(src.data)
        os.replace(tmp, target)
    return target


def quiet_mupdf() -> None:
    """Keep MuPDF's repair chatter off stderr (it is noise for a batch of damaged files)."""
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)


def open_document(src: Source, password: str | None, config: "IngestConfig") -> Any:
    """Open with PyMuPDF, authenticate, and check the page limit; typed errors for every failure."""
    import pymupdf

    quiet_mupdf()
    try:
        doc = pymupdf.open(stream=src.data, filetype=src.kind)
    except Exception as e:  # MuPDF raises FileDataError, RuntimeError, ValueError... on bad files
        if src.kind != "pdf":
            raise CorruptDocument(f"the {src.kind.upper()} image cannot be decoded ({e})", path=src.name) from None
        raise CorruptDocument(f"the PDF is damaged beyond repair ({e})", path=src.name) from None
    if doc.needs_pass:
        if password is None:
            doc.close()
            raise EncryptedDocument("the PDF is encrypted; give its password (--password or a per-file map)",
                                    path=src.name)
        opened = next((pw for pw in _password_forms(password) if doc.authenticate(pw)), None)
        if opened is None:
            doc.close()
            raise EncryptedDocument("wrong password for this encrypted PDF; check the password", path=src.name)
        if src.path is not None:
            _PASSWORDS[str(src.path)] = opened
    try:
        count = doc.page_count
    except Exception as e:
        doc.close()
        raise CorruptDocument(f"the page tree cannot be read ({e})", path=src.name) from None
    if count == 0:
        repaired = bool(getattr(doc, "is_repaired", False))
        doc.close()
        if repaired:
            raise CorruptDocument("the PDF is damaged: repair found no readable page", path=src.name)
        raise EmptyDocument("the document has no pages", path=src.name)
    if count > config.max_pages:
        doc.close()
        raise DocumentTooLarge(
            f"{count} pages is over the limit of {config.max_pages}; raise ingest.max_pages to read it",
            path=src.name,
        )
    return doc


_MAPPED_TO_NOTHING = dict.fromkeys(map(ord, "\u00ad\u034f\u1806\u180b\u180c\u180d\u200b\u200c\u200d\u2060"
                                           "\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09"
                                           "\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f\ufeff"))


def _password_forms(password: str) -> list[str]:
    """The password as given, then SASLprep-normalised (RFC 4013), which AES-256 (R6) PDFs expect."""
    import unicodedata

    prepped = unicodedata.normalize("NFKC", password.translate(_MAPPED_TO_NOTHING))
    prepped = "".join(" " if unicodedata.category(c) == "Zs" else c for c in prepped)
    return [password] if prepped == password else [password, prepped]


def known_password(path: str | Path) -> str | None:
    """The password that opened ``path`` earlier in this process, if any."""
    return _PASSWORDS.get(str(path))


def discover(paths: list[str | Path]) -> list[Path]:
    """Files as given plus supported files inside folders (recursive), in a deterministic order.

    Files named directly are kept whatever their type (so a wrong file is reported, not
    silently dropped); inside folders only PDF/PNG/JPEG/TIFF are taken, hidden entries skipped,
    sorted by relative path. Repeated paths appear once.
    """
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            ]
            for f in sorted(found, key=lambda f: f.relative_to(p).as_posix()):
                add(f)
        elif p.exists():
            add(p)
        else:
            raise DocumentError("no such file or folder; check the path", path=str(p))
    return out
