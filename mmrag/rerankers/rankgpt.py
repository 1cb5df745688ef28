"""RankGPT: an LLM prints a permutation of ``[n]`` ids for each window (window 20, step 10).

Any chat causal LM by Hugging Face id or folder; default: the bundled SmolLM2-135M-Instruct.
``backend="openai"`` sends the same chat messages to a server (vLLM, SGLang, llama-cpp-python)
at ``base_url`` that serves ``model``; its reply is parsed the same way.
"""

from __future__ import annotations

from typing import Any, Sequence

from mmrag.errors import ConfigError
from mmrag.rerankers import hf
from mmrag.rerankers.listwise import LISTWISE_SYSTEM, WindowReranker, listwise_prompt, parse_ranking
from mmrag.types import Candidate


class LLMWindowReranker(WindowReranker):
    """A window reranker backed by a causal LM loaded once per instance (and cached)."""

    def __init__(self, model: str | None = None, *, window: int = 20, step: int = 10,
                 max_words: int | None = 300, device: str | None = None, dtype: str | None = None,
                 attn: str = "sdpa", adapter: str | None = None):
        super().__init__(window=window, step=step, max_words=max_words)
        self.model_id = model
        self.device = device
        self.dtype = dtype
        self.attn = attn
        self.adapter = adapter
        self._lm: tuple[Any, Any] | None = None

    @property
    def lm(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded on first use."""
        if self._lm is None:
            self._lm = hf.load_causal_lm(self.model_id, adapter=self.adapter, attn=self.attn,
                                         dtype=self.dtype, device=self.device)
        return self._lm

    def passages(self, candidates: Sequence[Candidate]) -> list[str]:
        return [hf.truncate_words(c.text, self.max_words) for c in candidates]


class RankGPTReranker(LLMWindowReranker):
    """Listwise permutation generation (Sun et al., 2023), parsed robustly."""

    name = "rankgpt"
    system = LISTWISE_SYSTEM

    def __init__(self, model: str | None = None, *, window: int = 20, step: int = 10,
                 max_words: int | None = 300, max_new_tokens: int | None = None,
                 device: str | None = None, dtype: str | None = None, attn: str = "sdpa",
                 adapter: str | None = None, backend: str = "transformers", base_url: str | None = None,
                 api_key: str | None = None, timeout: float = 600.0, retries: int = 2, top_logprobs: int = 20):
        super().__init__(model, window=window, step=step, max_words=max_words, device=device,
                         dtype=dtype, attn=attn, adapter=adapter)
        self.max_new_tokens = max_new_tokens
        self.last_output = ""  # the model's last raw answer, for inspection
        self.client: Any = None  # a ChatClient when the model is served (backend "openai")
        if backend == "openai":
            if adapter:
                raise ConfigError("backend 'openai' cannot load an adapter: serve the adapted model instead "
                                  "(vLLM: --enable-lora --lora-modules NAME=PATH, then model: NAME)")
            from mmrag.generate.openai_compatible import chat_client

            self.client = chat_client(base_url, model, api_key=api_key, timeout=timeout, retries=retries,
                                      top_logprobs=top_logprobs)
        elif backend != "transformers":
            raise ConfigError(f"unknown backend {backend!r}; use transformers or openai")

    def user_prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        labels = [str(i + 1) for i in range(len(candidates))]
        return listwise_prompt(query, self.passages(candidates), labels)

    def messages(self, query: str, candidates: Sequence[Candidate]) -> list[dict]:
        """The chat the model answers: the system instruction and one window of passages."""
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user_prompt(query, candidates)}]

    def prompt(self, query: str, candidates: Sequence[Candidate]) -> str:
        """The full templated text the model continues."""
        _, tok = self.lm
        return hf.chat_text(tok, self.messages(query, candidates))

    def new_tokens(self, n: int) -> int:
        # "[12] > " is at most ~5 tokens in common tokenizers
        return self.max_new_tokens or 5 * n + 8

    def parse(self, text: str, n: int) -> list[int]:
        return parse_ranking(text, n)

    def rank_window(self, query: str, candidates: list[Candidate]) -> list[int]:
        if len(candidates) < 2:
            return list(range(len(candidates)))
        if self.client is not None:
            self.last_output = self.client.generate(self.messages(query, candidates),
                                                    max_new_tokens=self.new_tokens(len(candidates)))
        else:
            lm, tok = self.lm
            self.last_output = hf.generate_text(lm, tok, self.prompt(query, candidates),
                                                self.new_tokens(len(candidates)))
        return self.parse(self.last_output, len(candidates))
