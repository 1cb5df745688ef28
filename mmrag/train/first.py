"""``--method first``: FIRST's objective (Reddy et al., 2024) on listwise windows.

Loss = language-modelling loss on the ranked identifiers ``[C] > [A] > …`` (the label order)
+ ``rank_weight`` × weighted RankNet over the logits of the identifier letters at the first
generated position, the position FIRST reads at inference. Prompts come from the ``first``
reranker itself, so training and inference see the same text. A transformers ``Trainer`` whose
``compute_loss`` adds the ranking term runs the loop. The saved folder loads with
``mmrag.rerankers.load("first", model=OUT)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mmrag.train import llm_common as common
from mmrag.train.ranking_types import RankingExample

OPTIONS = {
    "lr": 1e-5,
    "window": 20,  # passages per prompt (A..T)
    "max_words": 300,  # words kept per passage, as the reranker does
    "rank_weight": 10.0,  # weight of the RankNet term against the LM term
    "shuffle": False,  # keep the first-stage order the reranker sees; True: random order
    "copies": 1,  # copies of each example (each shuffled anew when shuffle is on)
}


def encode_window(tok: Any, reranker: Any, query: str, window: list, relevance: dict[int, int]) -> dict:
    """Token ids and labels of one training window, with the position of the first identifier."""
    from mmrag.rerankers import hf
    from mmrag.rerankers.first import letter_token_ids
    from mmrag.rerankers.listwise import letter_label
    from mmrag.train.rewards import label_order

    cands = common.candidates(window)
    prompt = hf.encode(tok, reranker.prompt(query, cands))  # ends with "[" as at inference
    order = label_order(len(cands), relevance)
    letters = letter_token_ids(tok, len(cands))
    rest = "] > [".join(letter_label(i) for i in order[1:])
    tail = hf.encode(tok, "]" + (" > [" + rest + "]" if rest else ""))
    target = [letters[order[0]]] + tail + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
    return {"input_ids": prompt + target, "labels": [-100] * len(prompt) + target,
            "first": {"pos": len(prompt) - 1, "letters": letters, "order": order, "relevance": relevance}}


def collate(pad_id: int):
    def fn(rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[b, :n] = torch.tensor(r["input_ids"])
            labels[b, :n] = torch.tensor(r["labels"])
            mask[b, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask, "first": [r["first"] for r in rows]}

    return fn


def make_trainer_class(rank_weight: float) -> type:
    from transformers import Trainer

    from mmrag.train.losses import causal_lm_loss, weighted_ranknet

    class FirstTrainer(Trainer):
        """LM loss + weighted RankNet on the first identifier's logits."""

        parts: dict[str, list[float]] = {"lm_loss": [], "rank_loss": []}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            meta = inputs.pop("first")
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            lm = causal_lm_loss(out.logits, inputs["labels"])
            ranks = []
            for b, m in enumerate(meta):
                scores = out.logits[b, m["pos"], m["letters"]].float()
                ranks.append(weighted_ranknet(scores, m["order"], m["relevance"]))
            rank = sum(ranks) / len(ranks)
            self.parts["lm_loss"].append(float(lm.detach()))
            self.parts["rank_loss"].append(float(rank.detach()))
            loss = lm + rank_weight * rank
            return (loss, out) if return_outputs else loss

        def log(self, logs: dict, *args: Any, **kwargs: Any) -> None:
            if "loss" in logs:
                for key, values in self.parts.items():
                    if values:
                        logs[key] = sum(values) / len(values)
                        values.clear()
            super().log(logs, *args, **kwargs)

    FirstTrainer.parts = {"lm_loss": [], "rank_loss": []}
    return FirstTrainer


def train(examples: list[RankingExample], out: Path, options: dict) -> dict:
    """Fine-tune a causal LM with FIRST's objective; save it for the ``first`` reranker."""
    opts, started, model, tok = common.begin(options, OPTIONS)
    from transformers import TrainingArguments

    from mmrag.rerankers.first import FirstReranker

    window = int(opts["window"])
    reranker = FirstReranker(model=opts["model"], window=window, step=max(1, window // 2), max_words=opts["max_words"])
    reranker._lm = (model, tok)  # build prompts with the reranker's own code, on this tokenizer
    rng = random.Random(int(opts["seed"]))
    rows = []
    for e in common.with_positives(examples):
        for _ in range(int(opts["copies"])):
            shown, relevance = common.window_of(e, window, rng if opts["shuffle"] else None)
            rows.append(encode_window(tok, reranker, e.query, shown, relevance))
    lora = common.lora_config(opts)
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora)
    trainer = make_trainer_class(float(opts["rank_weight"]))(
        model=model, args=TrainingArguments(**common.trainer_kwargs(out, opts)), train_dataset=rows,
        data_collator=collate(tok.pad_token_id))
    trainer.train()
    result = common.summary("first", opts, started, len(examples), len(rows),
                            loss=common.history(trainer), lm_loss=common.history(trainer, "lm_loss"),
                            rank_loss=common.history(trainer, "rank_loss"), reranker="first")
    return common.save(trainer.model, tok, Path(out), result)
