"""``[doc p.N]`` citations: how generators label pages, and how cited text maps back to regions.

A generator shows each context page with ``reference(hit)`` (e.g. ``[report.pdf p.3]``) and asks
the model to cite that way. ``cite(text, contexts)`` finds the citations in the reply, matches
each to a context page, and picks the layout block whose words best cover the sentence it
supports, so the citation points at a region: ``Citation(doc_id, path, page, bbox)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mmrag.types import Block, Citation, Hit

_BRACKET = re.compile(r"\[([^\[\]\n]{1,300})\]")
_PAGES = re.compile(r"(?:^|(?<=[\s,;:(]))(?:pp?|pages?|pg)\.?\s*(\d+(?:\s*[-–]\s*\d+)?(?:\s*(?:,|and)\s*\d+(?:\s*[-–]\s*\d+)?)*)",
                    re.I)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_WORD = re.compile(r"[^\W_]+", re.U)
_STOP = frozenset("the a an and or of to in on for by with at from as is are was were be been this that these "
                  "those it its which what who how per than".split())
MAX_RANGE = 20  # a "p.3-9" range longer than this is not a citation we trust


@dataclass(frozen=True)
class Mark:
    """One cited page in generated text: the document as written, the page, and the span."""

    doc: str
    page: int
    start: int
    end: int


def label(hit: Hit) -> str:
    """How a page's document is named in prompts: its file name, else a short doc id."""
    return Path(hit.path).name if hit.path else hit.doc_id[:12]


def reference(hit: Hit) -> str:
    """The citation a model should copy for this page, e.g. ``[report.pdf p.3]``."""
    return f"[{label(hit)} p.{hit.page}]"


def _pages(spec: str) -> list[int]:
    pages: list[int] = []
    for piece in re.split(r"\s*(?:,|and)\s*", spec.strip()):
        if not piece:
            continue
        bounds = [int(x) for x in re.split(r"\s*[-–]\s*", piece) if x]
        lo, hi = bounds[0], bounds[-1]
        if hi < lo or hi - lo > MAX_RANGE:
            hi = lo
        pages.extend(range(lo, hi + 1))
    return pages


def parse_citations(text: str) -> list[Mark]:
    """Every ``[doc p.N]``-style citation in ``text``, in order.

    Accepts ``[doc p.3]``, ``[doc, p. 3]``, ``[doc pp. 3-4]``, ``[doc p.3, 5]``, ``[p.3]`` and
    several citations in one bracket separated by ``;``. Brackets without a page are ignored.
    """
    marks: list[Mark] = []
    for m in _BRACKET.finditer(text or ""):
        for segment in m.group(1).split(";"):
            pm = _PAGES.search(segment)
            if pm is None:
                continue
            doc = segment[:pm.start()].strip().strip(",:").strip().strip("'\"`")
            for page in _pages(pm.group(1)):
                marks.append(Mark(doc, page, m.start(), m.end()))
    return marks


def words(text: str) -> set[str]:
    return {w for w in (t.lower() for t in _WORD.findall(text)) if w not in _STOP and (len(w) > 1 or w.isdigit())}


def best_block(claim: str, blocks: Sequence[Block]) -> Block | None:
    """The block sharing most words with ``claim`` (ties: the tighter block); None if none share any."""
    want = words(claim)
    best, best_key = None, (0, 0.0)
    for b in blocks:
        have = words(b.text)
        shared = len(want & have)
        key = (shared, shared / len(have) if have else 0.0)
        if shared and key > best_key:
            best, best_key = b, key
    return best


def claim_for(text: str, mark: Mark) -> str:
    """The sentence a citation supports: from the previous sentence end (or citation) to it."""
    head = _BRACKET.sub(" ", text[:mark.start])
    cuts = [m.end() for m in _SENTENCE_END.finditer(head)]
    claim = head[cuts[-1]:] if cuts else head
    if claim.strip():
        return claim.strip()
    tail = _BRACKET.sub(" ", text[mark.end:])
    end = _SENTENCE_END.search(tail)
    return tail[:end.start() if end else len(tail)].strip()


def _same_doc(written: str, hit: Hit) -> bool:
    w = written.lower().strip()
    if not w:
        return True
    name = label(hit).lower()
    return w in (name, Path(name).stem) or hit.doc_id.lower().startswith(w) or name.startswith(w)


def match(mark: Mark, contexts: Sequence[Hit]) -> Hit | None:
    """The context page a citation means: same page and document; or the only context with that
    page when the document name is garbled. None for a page the model was not shown."""
    on_page = [h for h in contexts if h.page == mark.page]
    named = [h for h in on_page if _same_doc(mark.doc, h)]
    if named:
        return named[0]
    return on_page[0] if len(on_page) == 1 else None


def region(claim: str, hit: Hit) -> tuple[float, float, float, float] | None:
    """Box of the block that best supports ``claim`` on this page, else the hit's snippet box."""
    block = best_block(claim, hit.blocks)
    if block is not None:
        return tuple(block.bbox)  # type: ignore[return-value]
    return tuple(hit.bbox) if hit.bbox else None  # type: ignore[return-value]


def cite(text: str, contexts: Sequence[Hit]) -> list[Citation]:
    """Citations in ``text`` mapped to (doc, page, bbox of the best-matching block), deduplicated."""
    out: list[Citation] = []
    seen: set[tuple] = set()
    for mark in parse_citations(text):
        hit = match(mark, contexts)
        if hit is None:
            continue
        bbox = region(claim_for(text, mark), hit)
        key = (hit.doc_id, hit.page, bbox)
        if key not in seen:
            seen.add(key)
            out.append(Citation(hit.doc_id, hit.path, hit.page, bbox))
    return out
