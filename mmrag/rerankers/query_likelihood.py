"""Query likelihood (UPR, Sachan et al., 2022): mean log p(query | passage) under a causal LM.

Prompt: "Passage: {p}\\nPlease write a question based on this passage.\\nQuestion:" followed by
the query; batched with left padding so every row's query sits at the same positions and only
those logits are computed. Default model: the bundled SmolLM2-135M-Instruct.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrag.rerankers import hf
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate

UPR_PROMPT = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"


class QueryLikelihoodReranker(Reranker):
    """Scores each passage by how likely the LM finds the query after it."""

    name = "query-likelihood"

    def __init__(self, model: str | None = None, *, batch_size: int = 16, max_words: int | None = 200,
                 device: str | None = None, dtype: str | None = None):
        self.model_id = model
        self.batch_size = batch_size
        self.max_words = max_words
        self.device = device
        self.dtype = dtype
        self._lm: tuple[Any, Any] | None = None

    @property
    def lm(self) -> tuple[Any, Any]:
        if self._lm is None:
            self._lm = hf.load_causal_lm(self.model_id, dtype=self.dtype, device=self.device)
        return self._lm

    def token_ids(self, query: str, passage: str) -> tuple[list[int], list[int]]:
        """(prompt ids with the tokenizer's leading special tokens, query ids)."""
        _, tok = self.lm
        prompt = UPR_PROMPT.format(passage=hf.truncate_words(passage, self.max_words))
        return tok(prompt)["input_ids"], hf.encode(tok, " " + query.strip())

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        import torch

        lm, tok = self.lm
        pairs = [self.token_ids(query, c.text) for c in candidates]
        q = pairs[0][1] if pairs else []
        if not q:
            return [0.0] * len(candidates)
        seqs = [p + q for p, _ in pairs]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = np.zeros(len(seqs))
        target = torch.tensor(q, device=lm.device)
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):  # left padding: the query ends every row
                ids[r, width - len(seqs[i]):] = torch.tensor(seqs[i])
                mask[r, width - len(seqs[i]):] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = lm(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                            position_ids=pos.to(lm.device), logits_to_keep=len(q) + 1).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # predictions of each query token
            tok_lp = logp.gather(-1, target.expand(len(idx), -1).unsqueeze(-1)).squeeze(-1)
            out[idx] = tok_lp.mean(-1).cpu().numpy()
        return out.tolist()
