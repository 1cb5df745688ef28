"""Typed errors a user can cause. Each message says what to do next.

The CLI maps every `MmragError` to exit code 2 with its one-line message; batch jobs record
them in their report (``to_dict``) and go on with the next input.
"""

from __future__ import annotations


class MmragError(Exception):
    """Base of every error a user can cause or fix (bad input, config, missing model)."""

    exit_code = 2

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, "message": str(self)}


# --- documents -----------------------------------------------------------------------------
class DocumentError(MmragError):
    """A document could not be read; ``path`` names it."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class CorruptDocument(DocumentError):
    """The file is damaged beyond what the PDF reader repairs."""


class EncryptedDocument(DocumentError):
    """The PDF needs a password that was not given or is wrong."""


class UnsupportedFormat(DocumentError):
    """Not a PDF or a supported image (PNG, JPEG, TIFF)."""


class EmptyDocument(DocumentError):
    """A zero-byte file or a document with no pages."""


class DocumentTooLarge(DocumentError):
    """Over the configured byte or page limit."""


class DocumentTimeout(DocumentError):
    """Ingestion of this document ran past the per-document timeout."""


# --- configuration, models, indexes, queries -------------------------------------------------
class ConfigError(MmragError):
    """A config file or option is wrong (unknown key, bad value)."""


class MissingDependency(MmragError):
    """A backend's Python package is not installed; the message has the pip command."""


class ModelNotFound(MmragError):
    """Model weights could not be found locally or loaded."""


class UnknownComponent(MmragError):
    """A name that no registry knows (encoder, reranker, generator)."""


class IndexNotFound(MmragError):
    """No index at the given path."""


class IndexMismatch(MmragError):
    """The index was built with another encoder, dimension or format version."""


class IndexCorrupt(MmragError):
    """Index files fail their checksums or cannot be parsed."""


class IndexLocked(MmragError):
    """Another process holds the index's write lock."""


class QueryError(MmragError):
    """A query is empty or over the size limit."""


class UploadRejected(MmragError):
    """An uploaded file was refused (type, size or name)."""


class ServerError(MmragError):
    """A model server (OpenAI-compatible endpoint) is down or answered with an error."""

    exit_code = 1
