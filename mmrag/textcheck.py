"""Text from argv, a browser or an API call, made safe for tokenizers and SQLite, or refused.

Python decodes bytes that are not UTF-8 in argv to lone surrogates; no tokenizer or SQLite
binding accepts them, so they are refused with `QueryError`. NUL and other control characters
carry no meaning in a query and become spaces.
"""

from __future__ import annotations

import re
from typing import Any

from mmrag.errors import QueryError

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def require_text(value: Any, what: str) -> str:
    """``value`` as a str without lone surrogates, else `QueryError` saying which input is wrong."""
    if not isinstance(value, str):
        raise QueryError(f"{what} must be text, got {type(value).__name__}")
    if _SURROGATE.search(value):
        raise QueryError(f"{what} is not valid Unicode text (it holds bytes that are not UTF-8); "
                         "pass it as UTF-8")
    return value


def clean_query(value: Any, what: str = "the query") -> str:
    """A query with control characters (NUL included) turned into spaces; surrogates refused."""
    return _CONTROL.sub(" ", require_text(value, what))
