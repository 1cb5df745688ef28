"""FIRST (Reddy et al., 2024): listwise ranking from ONE forward pass.

The listwise prompt labels passages ``[A]..[T]``; after the chat template we append ``[`` and
rank the passages by the logits of their letter tokens at the next position. There is no
fallback to full generation: a tokenizer that cannot spell a letter as one token is an error.
Real checkpoint: ``castorini/first_mistral`` (Mistral-7B fine-tuned for this read-out).

``backend="openai"``: a chat server (vLLM, SGLang, llama-cpp-python) answers the same messages
with ``logprobs`` and ``top_logprobs``; the letters are ranked by their log-probs at the first
position of the reply that is not ``[`` or space, i.e. where the model names its best passage.
Log-probs differ from logits by one constant per position, so the order is the local one.
Letters the server does not list (outside its ``top_logprobs``) follow in input order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmrag.errors import ConfigError
from mmrag.rerankers import hf
from mmrag.rerankers.listwise import letter_label, listwise_prompt
from mmrag.rerankers.rankgpt import RankGPTReranker
from mmrag.types import Candidate


def letter_token_ids(tok: object, n: int) -> list[int]:
    """The id of each letter A.. as the single token that follows ``[``."""
    base = hf.encode(tok, "[")
    ids: list[int] = []
    for i in range(n):
        letter = letter_label(i)
        full = hf.encode(tok, "[" + letter)
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ConfigError(
                f"FIRST needs every passage letter to be one token after '[', but this tokenizer "
                f"splits '[{letter}' into {full}; use a model trained for FIRST (castorini/first_mistral) "
                "or the 'rankgpt' reranker"
            )
        ids.append(full[-1])
    if len(set(ids)) != len(ids):
        raise ConfigError("FIRST: two passage letters map to the same token; use another tokenizer")
    return ids


def letter_of(token: str, n: int) -> int | None:
    """0-based passage index of a served token such as ``"B"``, ``" B"``, ``"[B"`` or ``"B]"``."""
    t = token.strip().lstrip("[").rstrip("]").strip()
    if len(t) == 1 and "A" <= t <= "Z" and ord(t) - ord("A") < n:
        return ord(t) - ord("A")
    return None


def answer_position(content: Sequence[dict]) -> int:
    """Index of the first generated token that is not ``[`` or white space (where the letter is)."""
    for i, entry in enumerate(content):
        if str(entry.get("token", "")).strip() not in ("", "["):
            return i
    return 0


def letter_logprobs(content: Sequence[dict], n: int) -> np.ndarray:
    """Log-prob of each letter A.. at ``answer_position``; -inf for letters the server did not list."""
    out = np.full(n, -np.inf)
    for entry in content[answer_position(content)].get("top_logprobs") or []:
        i = letter_of(str(entry.get("token", "")), n)
        if i is not None:
            out[i] = max(out[i], float(entry["logprob"]))
    return out


class FirstReranker(RankGPTReranker):
    """Single-token listwise reranking (castorini/first_mistral's read-out)."""

    name = "first"

    def __init__(self, model: str | None = None, *, window: int = 20, step: int = 10,
                 max_words: int | None = 300, device: str | None = None, dtype: str | None = None,
                 attn: str = "sdpa", adapter: str | None = None, **server: Any):
        if window > 26:
            raise ConfigError("FIRST labels passages A..Z: use window <= 26")
        super().__init__(model, window=window, step=step, max_words=max_words, device=device,
                         dtype=dtype, attn=attn, adapter=adapter, **server)
        # letter logits of the last window (served: log-probs, -inf where not listed)
        self.last_logits: np.ndarray | None = None
        self.last_logprobs: list[dict] = []  # served: the reply's tokens with their top_logprobs

    def user_prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        labels = [letter_label(i) for i in range(len(candidates))]
        return listwise_prompt(query, self.passages(candidates), labels)

    def prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        return super().prompt(query, candidates) + "["

    def letter_logits(self, query: str, candidates: Sequence[Candidate]) -> np.ndarray:
        """Logits of the letters A.. at the position after the appended ``[``."""
        import torch

        lm, tok = self.lm
        letters = letter_token_ids(tok, len(candidates))
        ids = torch.tensor([hf.encode(tok, self.prompt(query, candidates))], device=lm.device)
        with torch.inference_mode():
            logits = lm(input_ids=ids, logits_to_keep=1).logits[0, -1]
        return logits[letters].float().cpu().numpy()

    def served_letter_logprobs(self, query: str, candidates: Sequence[Candidate]) -> np.ndarray:
        """The letters' log-probs from the server (``[`` plus a letter, and one token of slack)."""
        self.last_logprobs = self.client.token_logprobs(self.messages(query, candidates), max_tokens=3)
        return letter_logprobs(self.last_logprobs, len(candidates))

    def rank_window(self, query: str, candidates: list[Candidate]) -> list[int]:
        if len(candidates) < 2:
            return list(range(len(candidates)))
        if self.client is not None:
            self.last_logits = self.served_letter_logprobs(query, candidates)
        else:
            self.last_logits = self.letter_logits(query, candidates)
        return [int(i) for i in np.argsort(-self.last_logits, kind="stable")]
