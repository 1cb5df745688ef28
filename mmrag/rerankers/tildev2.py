"""TILDEv2 (Zhuang & Zuccon, 2021): contextualised exact-term matching.

Each passage token gets a weight ``relu(w · h_t + b)`` from a BERT encoder with a one-unit
projection (``tok_proj``); a passage's score is the sum over the query's tokens (stop words
removed) of the passage's largest weight for that token (0 when the token is absent).
Optional expansion (``expansion_model="ielab/TILDE"``) appends the ``expansion_terms`` most
likely new tokens from TILDE's [CLS] vocabulary logits to each passage before weighting, as
TILDEv2 does at index time. Real checkpoint: ``ielab/TILDEv2-TILDE200-exp`` (bert-base-uncased
tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrag.errors import ModelNotFound
from mmrag.rerankers import hf
from mmrag.rerankers.base import Reranker
from mmrag.types import Candidate

DEFAULT_MODEL = "ielab/TILDEv2-TILDE200-exp"

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves s t don ll m o re ve y
""".split())


def _model_dir(model: str) -> Path:
    p = Path(model)
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model))
    except Exception as e:  # offline hub errors come in several types
        raise ModelNotFound(f"TILDEv2 model {model!r} is not available locally ({type(e).__name__}); "
                            "download it once or give a local folder") from None


def load_tildev2(model: str, device: str) -> tuple[Any, Any]:
    """(BertModel, tok_proj Linear) from a TILDEv2 checkpoint (keys ``bert.*`` and ``tok_proj.*``)."""
    import torch
    from transformers import BertConfig, BertModel

    folder = _model_dir(model)
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ModelNotFound(f"{folder} has no model.safetensors or pytorch_model.bin")
    if "tok_proj.weight" not in state:
        raise ModelNotFound(f"{folder} is not a TILDEv2 checkpoint (no tok_proj weights)")
    config = BertConfig.from_pretrained(folder)
    bert = BertModel(config, add_pooling_layer=False)
    bert_state = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    missing, _ = bert.load_state_dict(bert_state, strict=False)
    if [k for k in missing if "position_ids" not in k]:
        raise ModelNotFound(f"{folder}: TILDEv2 weights are missing {missing[:3]}")
    proj = torch.nn.Linear(config.hidden_size, 1)
    proj.load_state_dict({"weight": state["tok_proj.weight"], "bias": state["tok_proj.bias"]})
    return bert.to(device).eval(), proj.to(device).eval()


class TildeV2Reranker(Reranker):
    """Exact-term matching with contextualised passage token weights."""

    name = "tildev2"

    def __init__(self, model: str = DEFAULT_MODEL, *, tokenizer: str | None = None,
                 expansion_model: str | None = None, expansion_terms: int = 200, batch_size: int = 32,
                 max_length: int = 256, device: str | None = None):
        self.model_id = model
        self.tokenizer_id = tokenizer or model
        self.expansion_model = expansion_model
        self.expansion_terms = expansion_terms
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._parts: dict | None = None

    @property
    def parts(self) -> dict:
        if self._parts is None:
            dev = hf.pick_device(self.device)

            def build() -> dict:
                from transformers import AutoTokenizer

                try:
                    tok = AutoTokenizer.from_pretrained(self.tokenizer_id)
                except (OSError, ValueError) as e:
                    raise ModelNotFound(f"no tokenizer at {self.tokenizer_id!r} ({e}); TILDEv2 uses "
                                        "bert-base-uncased's: pass tokenizer=") from None
                bert, proj = load_tildev2(self.model_id, dev)
                stop = {i for w in STOP_WORDS for i in tok(w, add_special_tokens=False)["input_ids"]}
                out = {"tok": tok, "bert": bert, "proj": proj, "stop": stop, "expander": None}
                if self.expansion_model:
                    from transformers import BertLMHeadModel

                    try:
                        out["expander"] = BertLMHeadModel.from_pretrained(self.expansion_model).to(dev).eval()
                    except (OSError, ValueError) as e:
                        raise ModelNotFound(f"could not load TILDE expansion model {self.expansion_model!r}: {e}") from None
                return out

            self._parts = hf.cached(("tildev2", self.model_id, self.tokenizer_id, self.expansion_model, dev), build)
        return self._parts

    def query_terms(self, query: str) -> list[int]:
        """Query token ids without special tokens and stop words (repeats kept)."""
        p = self.parts
        ids = p["tok"](query, add_special_tokens=False)["input_ids"]
        return [i for i in ids if i not in p["stop"]]

    def expand(self, token_ids: list[list[int]]) -> list[list[int]]:
        """Append each passage's most likely new (non-stop) tokens from TILDE's [CLS] logits."""
        import torch

        p = self.parts
        tok, model = p["tok"], p["expander"]
        special = set(tok.all_special_ids)
        out = []
        for ids in token_ids:
            x = torch.tensor([ids], device=model.device)
            with torch.inference_mode():
                logits = model(input_ids=x).logits[0, 0]
            have = set(ids) | special | p["stop"]
            new = [int(t) for t in torch.argsort(logits, descending=True).tolist() if int(t) not in have]
            room = self.max_length - len(ids)
            out.append(ids[:-1] + new[: max(0, min(self.expansion_terms, room))] + ids[-1:])
        return out

    def passage_weights(self, texts: Sequence[str]) -> list[dict[int, float]]:
        """Per passage: token id → its largest TILDEv2 weight."""
        import torch

        p = self.parts
        tok, bert, proj = p["tok"], p["bert"], p["proj"]
        enc = tok(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        if p["expander"] is not None:
            enc = self.expand(enc)
        special = set(tok.all_special_ids)
        out: list[dict[int, float]] = [dict() for _ in texts]
        order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            width = max(len(enc[i]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(enc[i])] = torch.tensor(enc[i])
                mask[r, : len(enc[i])] = 1
            with torch.inference_mode():
                h = bert(input_ids=ids.to(bert.device), attention_mask=mask.to(bert.device)).last_hidden_state
                w = torch.relu(proj(h)).squeeze(-1).float().cpu().numpy()
            for r, i in enumerate(idx):
                d = out[i]
                for t, v in zip(enc[i], w[r, : len(enc[i])]):
                    if t not in special and v > d.get(t, -1.0):
                        d[t] = float(v)
        return out

    def score(self, query: str, candidates: list[Candidate]) -> list[float]:
        terms = self.query_terms(query)
        weights = self.passage_weights([c.text for c in candidates])
        return [float(np.sum([w.get(t, 0.0) for t in terms])) if terms else 0.0 for w in weights]
