"""Training data for encoder fine-tuning: items of several modalities and (query → positive item) pairs.

On disk (``mmrag train encoder``): ``items.jsonl`` rows ``{"id", "text"?, "image"?}`` (image = a
path, relative to the file) and ``pairs.jsonl`` rows ``{"query": str | {"text"?, "image"?},
"positive": item id}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError


@dataclass
class Item:
    """A retrievable item: text, an image (PIL image or path), or both."""

    id: str
    text: str | None = None
    image: Any = None

    @property
    def modality(self) -> str:
        return "image+text" if self.text is not None and self.image is not None else (
            "image" if self.image is not None else "text")


@dataclass
class Query:
    text: str | None = None
    image: Any = None


@dataclass
class Pair:
    query: Query
    positive: str  # item id


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"training file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not a JSON line ({e.msg})") from None
    return rows


def _image_path(value: Any, base: Path, where: str) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise ConfigError(f"{where}: image {p} not found")
    return p


def load_items(path: str | Path) -> list[Item]:
    """Read ``items.jsonl``; every row needs an id and a text or an image."""
    path = Path(path)
    items, seen = [], set()
    for n, row in enumerate(_rows(path), 1):
        where = f"{path}:{n}"
        if "id" not in row or (row.get("text") is None and row.get("image") is None):
            raise ConfigError(f"{where}: an item needs an 'id' and a 'text' or an 'image'")
        if str(row["id"]) in seen:
            raise ConfigError(f"{where}: duplicate item id {row['id']!r}")
        seen.add(str(row["id"]))
        items.append(Item(str(row["id"]), row.get("text"), _image_path(row.get("image"), path.parent, where)))
    return items


def load_pairs(path: str | Path, items: list[Item]) -> list[Pair]:
    """Read ``pairs.jsonl``; each positive must be an item id."""
    path = Path(path)
    ids = {i.id for i in items}
    pairs = []
    for n, row in enumerate(_rows(path), 1):
        where = f"{path}:{n}"
        q = row.get("query")
        q = {"text": q} if isinstance(q, str) else (q or {})
        if q.get("text") is None and q.get("image") is None:
            raise ConfigError(f"{where}: a query needs a text or an image")
        pos = str(row.get("positive"))
        if pos not in ids:
            raise ConfigError(f"{where}: positive {pos!r} is not an item id in the items file")
        pairs.append(Pair(Query(q.get("text"), _image_path(q.get("image"), path.parent, where)), pos))
    if not pairs:
        raise ConfigError(f"{path}: no training pairs")
    return pairs
