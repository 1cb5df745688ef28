"""In-context reranking (ICR, Chen et al., 2025): relevance from attention, no generation.

Per window: one forward pass over "Here are some paragraphs: [i] doc ..." (best first-stage
documents last, nearest the query) fills a KV cache; two short passes over the query suffix
reuse it, one with the real query and one with the content-free query "N/A". A document
token's score is the attention it receives from the query tokens, summed over all layers and
heads and averaged over query tokens, minus the same quantity for "N/A". Tokens at or below
mean − 2·std (over all document tokens of the prompt) are dropped; a document's score is the
sum of its remaining tokens. Works with any HF causal LM (loaded with eager attention, which
returns the weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mmrag.rerankers import hf
from mmrag.rerankers.rankgpt import LLMWindowReranker
from mmrag.types import Candidate

ICR_HEAD = "Here are some paragraphs:\n\n"
ICR_INSTRUCTION = ("Please find information that are relevant to the following query in the "
                   "paragraphs above.\n\nQuery: ")
CALIBRATION_QUERY = "N/A"


@dataclass
class ICRLayout:
    """Token ids of the prompt by part, and where each document's tokens sit."""

    prefix: list[int]  # chat head, paragraphs, instruction: everything before the query
    query: list[int]
    tail: list[int]  # what follows the query (end of the user turn)
    doc_spans: list[tuple[int, int]]  # per document, in candidate order: [start, end) in prefix


def calibrated_doc_scores(attn_query: np.ndarray, attn_na: np.ndarray,
                          spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """ICR's aggregation from per-key attention of the query and of "N/A" (1-D, over keys)."""
    tokens = np.concatenate([np.arange(s, e) for s, e in spans]) if spans else np.zeros(0, int)
    diff = attn_query[tokens] - attn_na[tokens]
    if diff.size == 0:
        return np.zeros(len(spans))
    keep = diff > diff.mean() - 2.0 * diff.std()
    kept = np.where(keep, diff, 0.0)
    out, pos = [], 0
    for s, e in spans:
        out.append(float(kept[pos:pos + e - s].sum()))
        pos += e - s
    return np.asarray(out)


class ICRReranker(LLMWindowReranker):
    """Attention-based in-context reranker (no generation) over sliding windows."""

    name = "icr"

    def __init__(self, model: str | None = None, *, window: int = 20, step: int = 10,
                 max_words: int | None = 300, device: str | None = None, dtype: str | None = None,
                 adapter: str | None = None, fast_prefix: bool = True):
        super().__init__(model, window=window, step=step, max_words=max_words, device=device,
                         dtype=dtype, attn="eager", adapter=adapter)
        self.fast_prefix = fast_prefix  # run the long prefix pass with sdpa (no weights needed there)
        self.last_scores: np.ndarray | None = None

    def layout(self, query: str, candidates: Sequence[Candidate]) -> ICRLayout:
        """Tokenise the prompt part by part, so each document's token span is exact."""
        _, tok = self.lm
        head, tail = hf.split_template(tok)
        texts = self.passages(candidates)
        order = list(range(len(candidates)))[::-1]  # best first-stage candidate last
        pieces = [head + ICR_HEAD]
        for pos, i in enumerate(order, 1):
            pieces += [f"[{pos}] ", texts[i], "\n\n"]
        pieces += [ICR_INSTRUCTION, query, tail]
        enc = tok(pieces, add_special_tokens=False)["input_ids"]
        prefix: list[int] = list(enc[0])
        spans: dict[int, tuple[int, int]] = {}
        for k, i in enumerate(order):
            label, doc, sep = enc[1 + 3 * k], enc[2 + 3 * k], enc[3 + 3 * k]
            prefix += label
            spans[i] = (len(prefix), len(prefix) + len(doc))
            prefix += doc + sep
        prefix += enc[-3]
        return ICRLayout(prefix, list(enc[-2]), list(enc[-1]), [spans[i] for i in range(len(candidates))])

    def _query_attention(self, lm: Any, cache: Any, query: list[int], tail: list[int]) -> np.ndarray:
        """Attention from the query tokens to every key, summed over layers/heads, averaged."""
        import torch

        ids = torch.tensor([query + tail], device=lm.device)
        with torch.inference_mode():
            out = lm(input_ids=ids, cache=cache, use_cache=True, output_attentions=True, logits_to_keep=1)
        cache.crop(-ids.shape[1])  # back to the prefix for the next suffix
        total = None
        for layer in out.attentions:  # (1, heads, q, keys)
            a = layer[0, :, : len(query)].float().sum(0)
            total = a if total is None else total + a
        return total.mean(0).cpu().numpy().astype(np.float64)

    def window_scores(self, query: str, candidates: Sequence[Candidate]) -> np.ndarray:
        """ICR score of each candidate (input order) within one prompt."""
        import torch
        from transformers import DynamicCache

        lm, _ = self.lm
        lay = self.layout(query, candidates)
        cache = DynamicCache(config=lm.config)
        if self.fast_prefix:
            lm.set_attn_implementation("sdpa")
        try:
            with torch.inference_mode():
                lm(input_ids=torch.tensor([lay.prefix], device=lm.device), cache=cache, use_cache=True,
                   logits_to_keep=1)
        finally:
            if self.fast_prefix:
                lm.set_attn_implementation("eager")
        _, tok = self.lm
        attn_q = self._query_attention(lm, cache, lay.query, lay.tail)
        na = hf.encode(tok, CALIBRATION_QUERY)
        attn_na = self._query_attention(lm, cache, na, lay.tail)
        return calibrated_doc_scores(attn_q, attn_na, lay.doc_spans)

    def rank_window(self, query: str, candidates: list[Candidate]) -> list[int]:
        if len(candidates) < 2:
            return list(range(len(candidates)))
        self.last_scores = self.window_scores(query, candidates)
        return [int(i) for i in np.argsort(-self.last_scores, kind="stable")]
