"""Page images, rendered on demand from the source file (PDF or image) at a given DPI.

Recently used documents stay open (a small LRU keyed by path, size and mtime), so rendering
every page of a document does not reopen and re-parse it per page. Encrypted PDFs render with
the password that opened them earlier in this process (see ``source.known_password``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.errors import DocumentError, EncryptedDocument

if TYPE_CHECKING:
    from PIL.Image import Image

DEFAULT_DPI = 144
_CACHE: "OrderedDict[tuple, Any]" = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()  # MuPDF documents are not safe to share between threads


def _open(path: Path) -> Any:
    import pymupdf

    from mmrag.ingest.source import known_password, quiet_mupdf, sniff

    try:
        st = path.stat()
    except OSError:
        raise DocumentError("cannot render: the source file is gone; re-ingest it", path=str(path)) from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    doc = _CACHE.get(key)
    if doc is not None:
        _CACHE.move_to_end(key)
        return doc
    quiet_mupdf()
    data = path.read_bytes()
    kind = sniff(data, str(path)) or "pdf"
    try:
        doc = pymupdf.open(stream=data, filetype=kind)
    except Exception as e:
        raise DocumentError(f"cannot render: the file cannot be opened ({e})", path=str(path)) from None
    if doc.needs_pass:
        pw = known_password(path)
        if pw is None or not doc.authenticate(pw):
            raise EncryptedDocument("cannot render an encrypted PDF without its password; ingest it with "
                                    "the password first", path=str(path))
    _CACHE[key] = doc
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)[1].close()
    return doc


def pixmap(page: Any, dpi: int) -> Any:
    """An RGB pixmap of a PyMuPDF page (no alpha) at ``dpi``."""
    return page.get_pixmap(dpi=dpi, alpha=False)


def to_pil(pix: Any) -> "Image":
    from PIL import Image

    if pix.n != 3:
        import pymupdf

        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    # for RGB, PIL decodes the buffer into memory of its own: the image outlives the pixmap
    return Image.frombuffer("RGB", (pix.width, pix.height), pix.samples_mv, "raw", "RGB", pix.stride, 1)


def render_page(path: str | Path, page_number: int, dpi: int | None = None) -> "Image":
    """Page ``page_number`` (1-based) of a PDF or image file as an RGB PIL image (default 144 DPI)."""
    dpi = dpi or DEFAULT_DPI
    with _LOCK:
        doc = _open(Path(path))
        if not 1 <= page_number <= doc.page_count:
            raise DocumentError(f"page {page_number} does not exist (the document has {doc.page_count})",
                                path=str(path))
        return to_pil(pixmap(doc.load_page(page_number - 1), dpi))
