"""Retrieval passages: about ``words`` words of whole blocks, never crossing a page.

A title starts a new passage and stays with the text after it, so a heading is retrieved
together with its section. A passage that does not start with a title carries the last title
before it (on its page or an earlier one) as ``heading``: retrieval indexes ``heading + text``,
so a table or paragraph deep in a section still matches the section's name. A block longer than
a passage is cut at line, then sentence, then word boundaries; a long table is cut between rows
and each piece repeats the header rows.
"""

from __future__ import annotations

import re

from mmrag.types import BBox, Block, Chunk, Page, union_bbox

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
HEADING_CHARS = (3, 150)  # a title outside this length is a label or a paragraph set in bold


def chunk_pages(pages: list[Page], words: int = 200) -> list[Chunk]:
    """Block-aware chunks of about ``words`` words; ``chunk_id`` = ``<doc_id>#<page>#<i>``."""
    if words < 1:
        raise ValueError("words must be positive")
    chunks: list[Chunk] = []
    heading = ""  # carried across the pages of one document
    for page in pages:
        if page.error:
            continue
        blocks = page.blocks or ([Block(text=page.text, bbox=(0, 0, page.width, page.height))] if page.text else [])
        page_chunks, heading = _page_chunks(page, blocks, words, heading)
        chunks.extend(page_chunks)
    return chunks


def _is_heading(block: Block) -> bool:
    return block.kind == "title" and HEADING_CHARS[0] <= len(block.text.strip()) <= HEADING_CHARS[1]


def _page_chunks(page: Page, blocks: list[Block], words: int, heading: str) -> tuple[list[Chunk], str]:
    """The page's chunks, and the heading in force at its end (for the next page)."""
    out: list[Chunk] = []
    parts: list[tuple[str, BBox, str]] = []  # (text, bbox, kind)
    count = 0
    only_titles = True
    current = heading  # the last heading seen before the chunk being filled
    opened_with = heading  # the heading in force when that chunk started

    def flush() -> None:
        nonlocal parts, count, only_titles
        if parts:
            kinds = tuple(dict.fromkeys(k for _, _, k in parts))
            starts_with_title = parts[0][2] == "title"
            out.append(Chunk(
                chunk_id=f"{page.doc_id}#{page.page_number}#{len(out)}", doc_id=page.doc_id,
                page_number=page.page_number, text="\n".join(t for t, _, _ in parts),
                bbox=union_bbox([b for _, b, _ in parts]), kinds=kinds,
                heading="" if starts_with_title else opened_with,
            ))
        parts, count, only_titles = [], 0, True

    for block in blocks:
        if not block.text.strip():
            continue
        pieces = split_block(block, words)
        for j, piece in enumerate(pieces):
            n = len(piece.split())
            if block.kind == "title" and j == 0 and not only_titles:
                flush()  # a heading opens a new passage
            elif parts and not only_titles and count + n > words:
                flush()
            if not parts:
                opened_with = current
            parts.append((piece, block.bbox, block.kind))
            count += n
            only_titles = only_titles and block.kind == "title"
        if _is_heading(block):
            current = " ".join(block.text.split())
    flush()
    return out, current


def split_block(block: Block, words: int) -> list[str]:
    """The block's text in pieces of at most about ``words`` words (one piece when it fits)."""
    text = block.text.strip()
    if len(text.split()) <= words:
        return [text]
    if block.kind == "table":
        return _split_table(text, words)
    return _pack(_units(text, words), words)


def _units(text: str, words: int) -> list[str]:
    """Lines, sentences, and as a last resort word windows, each at most ``words`` words."""
    out: list[str] = []
    for line in text.splitlines() or [text]:
        for sentence in SENTENCE_END.split(line):
            toks = sentence.split()
            for k in range(0, len(toks), words):
                if toks[k:k + words]:
                    out.append(" ".join(toks[k:k + words]))
    return out


def _group(units: list[str], budget: int) -> list[list[str]]:
    """Consecutive units packed into groups of at most ``budget`` words (a longer unit stands alone)."""
    groups: list[list[str]] = []
    n = 0
    for u in units:
        m = len(u.split())
        if not groups or (groups[-1] and n + m > budget):
            groups.append([])
            n = 0
        groups[-1].append(u)
        n += m
    return groups


def _pack(units: list[str], words: int) -> list[str]:
    return [" ".join(g) for g in _group(units, words)]


def _split_table(md: str, words: int) -> list[str]:
    lines = md.splitlines()
    header = lines[:2] if len(lines) > 2 and set(lines[1].replace("|", "").strip()) <= set("-: ") else lines[:1]
    budget = max(1, words - len(" ".join(header).split()))
    groups = _group(lines[len(header):], budget) or [[]]
    return ["\n".join(header + g) for g in groups]
