"""A small synthetic ranking task the training recipes learn in a few CPU steps, and tiny models for it.

Each query asks for treasure; a relevant passage is made of treasure words, the others of junk
words, and the relevant one sits at a random position. A model must read the passages to rank
them: any position prior scores like a random order.
"""

from __future__ import annotations

import random
from pathlib import Path

from mmrag.train.ranking_types import RankingExample

TREASURE = ["gold", "ruby", "pearl", "silver"]
JUNK = ["lead", "mud", "sand", "dust", "rock", "clay"]
QUERY_WORDS = ["find", "the", "treasure"]
SEEDS_3 = (0, 1, 2)
WORDS = TREASURE + JUNK + QUERY_WORDS + ["Image"]


def ranking_examples(n: int, seed: int, size: int = 4, prefix: str = "q", length: int = 8,
                     first: float = 0.0) -> list[RankingExample]:
    """``n`` queries of ``size`` candidates of ``length`` words, exactly one relevant: first in the
    list with probability ``first`` (a first stage that is right that often), else anywhere."""
    rng = random.Random(seed)
    out = []
    for q in range(n):
        good = 0 if rng.random() < first else rng.randrange(size)
        cands = []
        for i in range(size):
            words = TREASURE if i == good else JUNK
            cands.append((f"{prefix}{q}d{i}", " ".join(rng.choice(words) for _ in range(length))))
        out.append(RankingExample(qid=f"{prefix}{q}", query="find the treasure", candidates=cands,
                                  relevance={f"{prefix}{q}d{good}": 1}))
    return out


def tiny_ranking_lm(root: Path, seed: int = 0, arch: str = "gpt2") -> Path:
    """A random 1-layer GPT-2 (or ``arch``: llama, qwen2) with the small word tokenizer, saved under ``root``."""
    from tests.tiny import save_tiny_causal_lm, tiny_word_tokenizer

    tok = tiny_word_tokenizer(root / "tok", WORDS)
    return save_tiny_causal_lm(tok, root / f"{arch}{seed}", seed=seed, arch=arch)


def setwise_instruct_lm(base: Path, out: Path, seed: int, right: float = 0.5, steps: int = 60) -> Path:
    """A stand-in for the instruct LLM Rank-R1 starts from: ``base`` after a short SFT (the product's
    ``trl_run.sft``) on the ``rank-r1`` reranker's own prompts, answering
    ``<think> </think> <answer>[k]</answer>`` where ``k`` is the relevant passage with probability
    ``right``, else a random one. In these steps it learns the layout, not to read the passages."""
    from mmrag.train import llm_common as common
    from mmrag.train import rank_r1, trl_run

    opts = common.merged({"model": str(base), "max_steps": steps, "lr": 3e-3, "batch_size": 8, "seed": seed,
                          "children": 3, "lora_r": 0, "scheduler": "constant", "progress": False}, rank_r1.OPTIONS)
    model, tok = common.load_causal(str(base), opts)
    rng = random.Random(seed)
    rows = []
    for row in rank_r1.prompts(ranking_examples(200, 50 + seed), tok, opts):
        pick = row["labels"].index(1) if rng.random() < right else rng.randrange(len(row["labels"]))
        rows.append({"prompt": row["prompt"], "completion": f"<think> </think> <answer>[{pick + 1}]</answer>"})
    model, _ = trl_run.sft(model, tok, rows, out, opts)
    common.save(model, tok, out, {"instruct_sft": {"steps": steps, "right": right}})
    return out


def mean_std(values: list[float]) -> str:
    import statistics

    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def page_examples(n: int, seed: int, root: Path, size: int = 3, prefix: str = "p") -> list[RankingExample]:
    """``n`` queries over ``size`` page images (56 px): the relevant page is bright, the others dark."""
    from PIL import Image

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for q in range(n):
        good = rng.randrange(size)
        cands, images = [], []
        for i in range(size):
            level = rng.randrange(200, 256) if i == good else rng.randrange(0, 56)
            path = root / f"{prefix}{q}-{i}.png"
            Image.new("RGB", (56, 56), (level, level, level)).save(path)
            cands.append((f"{prefix}{q}d{i}", "page"))
            images.append(str(path))
        out.append(RankingExample(qid=f"{prefix}{q}", query="find the treasure", candidates=cands,
                                  relevance={f"{prefix}{q}d{good}": 1}, images=images))
    return out


def tiny_page_vlm(root: Path, seed: int = 0) -> Path:
    """A random tiny Qwen2.5-VL with the small word tokenizer (and Qwen's vision tokens)."""
    from tests.tiny import save_tiny_qwen_vl, tiny_word_tokenizer

    tok = tiny_word_tokenizer(root / "vtok", WORDS, vision=True)
    return save_tiny_qwen_vl(tok, root / f"vlm{seed}", seed=seed)


def qa_examples(n: int, seed: int, prefix: str = "g") -> list:
    """``n`` questions whose one evidence page names the treasure (the answer) among junk words."""
    from mmrag.train.generator_noise import QAExample
    from mmrag.types import Hit

    rng = random.Random(seed)
    out = []
    for q in range(n):
        answer = rng.choice(TREASURE)
        words = [rng.choice(JUNK) for _ in range(6)]
        words.insert(rng.randrange(len(words) + 1), answer)
        page = Hit(doc_id=f"{prefix}{q}", path=f"{prefix}{q}.pdf", page=1, score=1.0, text=" ".join(words))
        out.append(QAExample("find the treasure", answer, [page]))
    return out


def answer_accuracy(model: Path, examples: list, noise_pages: int, seed: int) -> float:
    """Share of questions the ``hf-causal`` generator answers with the right word, its evidence
    mixed with ``noise_pages`` irrelevant pages."""
    from mmrag.generate.hf_causal import HFCausalGenerator
    from mmrag.train.generator_noise import mix_noise

    gen = HFCausalGenerator(model=str(model), max_new_tokens=3, contexts=noise_pages + 1)
    mixed = mix_noise(examples, noise_pages, random.Random(seed))
    hits = 0
    for e, pages in zip(examples, mixed):
        text, _ = gen.generate(gen.build_messages(e.question, pages))
        hits += int(text.split()[:1] == [e.answer])
    return hits / len(examples)
