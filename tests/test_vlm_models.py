"""The VLM rerankers and the qwen-vl generator on tiny random-weight Qwen2-VL / Qwen2.5-VL models.

The weights mean nothing; these tests check the real code paths: every page image reaches the
model in order, P(Yes) is the two-way softmax of the first-token logits, MM-R5 keeps a full
permutation whatever the model prints, and the generator cites real pages and boxes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("qwen_vl_utils")

from PIL import Image  # noqa: E402

from mmrag.generate.base import NO_ANSWER  # noqa: E402
from mmrag.generate.qwen_vl import QwenVLGenerator  # noqa: E402
from mmrag.rerankers.mm_r5 import MMR5Reranker  # noqa: E402
from mmrag.rerankers.ragllava import PROMPT, RagLLaVAReranker  # noqa: E402
from mmrag.types import Block, Candidate, Hit  # noqa: E402
from mmrag.vlm import load_vlm  # noqa: E402
from tests.tiny import save_tiny_qwen_vl  # noqa: E402

PIX = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 6)


@pytest.fixture(scope="module")
def tiny_dirs(qwen_vl_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny Qwen2-VL ("2") and Qwen2.5-VL ("2.5") folders, built once for this module."""
    return {v: str(save_tiny_qwen_vl(qwen_vl_tokenizer_dir, tmp_path_factory.mktemp(f"qwen{v}vl"), version=v))
            for v in ("2", "2.5")}


@pytest.fixture(params=["2", "2.5"])
def tiny_vlm_dir(request: pytest.FixtureRequest, tiny_dirs: dict[str, str]) -> str:
    """Each test that takes this runs on both architectures."""
    return tiny_dirs[request.param]


def _pages() -> list[Image.Image]:
    """Three pages of different shapes (so their patch grids differ) and colours."""
    return [Image.new("RGB", size, color) for size, color in
            [((56, 84), (200, 10, 10)), ((84, 56), (10, 200, 10)), ((56, 56), (10, 10, 200))]]


def _expected_grid(img: Image.Image, min_pixels: int, max_pixels: int) -> list[int]:
    from qwen_vl_utils import smart_resize

    h, w = smart_resize(img.height, img.width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    return [1, h // 14, w // 14]


class _Capture:
    """Records what the vision tower and the language model receive (the real forwards still run)."""

    def __init__(self, model: torch.nn.Module):
        self.vision: list[tuple] = []  # (pixel rows, grid_thw) per vision-tower call
        self.text: list = []  # input_ids per model call
        self.handles = [
            model.model.visual.register_forward_pre_hook(self._on_vision, with_kwargs=True),
            model.register_forward_pre_hook(self._on_model, with_kwargs=True),
        ]

    def _on_vision(self, module, args, kwargs):  # noqa: ANN001
        self.vision.append((args[0] if args else kwargs["hidden_states"], kwargs.get("grid_thw", args[1:2] or None)))

    def _on_model(self, module, args, kwargs):  # noqa: ANN001
        self.text.append(kwargs["input_ids"])

    @property
    def pixels(self) -> torch.Tensor:
        return torch.cat([v[0] for v in self.vision])

    @property
    def grids(self) -> list[list[int]]:
        return torch.cat([v[1] for v in self.vision]).tolist()

    def __enter__(self) -> "_Capture":
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def test_mm_r5_sends_every_image_in_order_and_keeps_a_permutation(tiny_vlm_dir: str) -> None:
    images = _pages()
    cands = [Candidate(f"p{i}", f"page {i}", image=img) for i, img in enumerate(images)]
    rr = MMR5Reranker(model=tiny_vlm_dir, temperature=0.0, max_new_tokens=8, **PIX)
    vlm = load_vlm(tiny_vlm_dir)
    with _Capture(vlm.model) as cap:
        out = rr.rerank("which page is blue?", cands)
    grids = cap.grids
    assert grids == [_expected_grid(img, **PIX) for img in images]
    # pixel rows are the images' own patches, concatenated in input order
    from qwen_vl_utils import fetch_image

    alone = [vlm.processor.image_processor(images=[fetch_image({"image": img, **PIX})], return_tensors="pt")
             for img in images]
    assert torch.allclose(cap.pixels, torch.cat([a["pixel_values"] for a in alone]))
    # the prompt names "Image i:" right before the i-th image's placeholder tokens
    text = vlm.tokenizer.decode(cap.text[0][0])  # the prefill: the whole prompt
    assert "The question is: which page is blue?" in text and "There are 3 images, id from 1 to 3" in text
    for i, (t, h, w) in enumerate(grids, 1):
        block = f"Image {i}: <|vision_start|>" + "<|image_pad|>" * (t * h * w // 4) + "<|vision_end|>"
        assert block in text
    assert text.index("Image 1:") < text.index("Image 2:") < text.index("Image 3:")
    # a random model prints no readable answer: the input order is kept, nothing lost
    assert [s.id for s in out] == ["p0", "p1", "p2"]
    assert rr.last_output == vlm.generate(rr.messages("which page is blue?", cands), max_new_tokens=8)


def test_mm_r5_passes_temperature_and_max_tokens_to_sampling(tiny_dirs: dict[str, str]) -> None:
    tiny_vlm_dir = tiny_dirs["2.5"]
    vlm = load_vlm(tiny_vlm_dir)
    seen: dict = {}
    real = vlm.model.generate

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003
        seen.update(kwargs)
        return real(*args, **kwargs)

    vlm.model.generate = spy
    try:
        MMR5Reranker(model=tiny_vlm_dir, **PIX, max_new_tokens=5).rerank("q", [Candidate("a", "", image=_pages()[0])])
    finally:
        del vlm.model.generate
    assert (seen["do_sample"], seen["temperature"], seen["max_new_tokens"]) == (True, 0.3, 5)


def test_ragllava_score_is_the_softmax_of_yes_and_no_logits(tiny_vlm_dir: str) -> None:
    images = _pages()
    texts = ["Revenue table for 2023 " * 40, "Board of directors", ""]
    cands = [Candidate(f"p{i}", t, image=img) for i, (t, img) in enumerate(zip(texts, images))]
    rr = RagLLaVAReranker(model=tiny_vlm_dir, batch_size=2, caption_chars=60, **PIX)
    scores = rr.score("what was revenue?", cands)

    # independent computation: one page at a time, full logits, our own softmax
    vlm = load_vlm(tiny_vlm_dir)
    proc, tok = vlm.processor, vlm.tokenizer
    yes, no = tok("Yes", add_special_tokens=False).input_ids[0], tok("No", add_special_tokens=False).input_ids[0]
    from qwen_vl_utils import fetch_image

    for cand, img, got in zip(cands, images, scores):
        caption = " ".join(cand.text.split())
        if len(caption) > 60:
            caption = caption[:60].rsplit(" ", 1)[0] + " ..."
        prompt = PROMPT.format(caption=caption, query="what was revenue?")
        chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = proc.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        batch = proc(text=[text], images=[fetch_image({"image": img, **PIX})], return_tensors="pt")
        with torch.no_grad():
            logits = vlm.model(**batch).logits[0, -1]
        p_yes = torch.exp(logits[yes]) / (torch.exp(logits[yes]) + torch.exp(logits[no]))
        assert got == pytest.approx(float(p_yes), abs=1e-5)
        assert cand.metadata["relevance"] == got

    ranked = rr.rerank("what was revenue?", cands)
    assert [s.score for s in ranked] == sorted(scores, reverse=True)


def test_ragllava_adaptive_threshold_and_top_k(tiny_dirs: dict[str, str]) -> None:
    model = tiny_dirs["2.5"]
    cands = [Candidate(f"p{i}", "x", image=img) for i, img in enumerate(_pages())]
    probe = RagLLaVAReranker(model=model, top_k=2, min_score=0.0, relative=0.0, **PIX)
    ranked = probe.rerank("q", cands)
    scores = [c.metadata["relevance"] for c in cands]
    # top_k caps what passes, and "passes" marks exactly the selected pages
    kept = probe.select(ranked)
    assert len(kept) == 2 == probe.last_passed and [s.score for s in kept] == sorted(scores, reverse=True)[:2]
    assert {c.id for c in cands if c.metadata["passes"]} == {s.id for s in kept}

    def keeps(**options: float) -> list[float]:
        return [s.score for s in RagLLaVAReranker(model=model, **PIX, **options).select(ranked)]

    lo, hi = min(scores), max(scores)
    mid = (lo + hi) / 2  # an absolute floor between the scores lets only the higher pages through
    assert keeps(top_k=5, min_score=mid, relative=0.0) == sorted([s for s in scores if s >= mid], reverse=True)
    # relative to the best: a ratio of 1 keeps only the best page, a ratio just under lo/hi keeps all
    assert keeps(top_k=5, min_score=0.0, relative=1.0) == [hi]
    assert len(keeps(top_k=5, min_score=0.0, relative=lo / hi - 1e-9)) == 3
    # a floor above every score keeps none: the generator will say the documents do not answer
    assert keeps(top_k=5, min_score=hi + 1e-6) == []


def _page_hits(tmp_path: Path) -> list[Hit]:
    hits = []
    for i, img in enumerate(_pages()):
        path = tmp_path / f"page{i}.png"
        img.save(path)
        blocks = [Block(f"Heading {i}", (10.0, 10.0, 200.0, 30.0), "title"),
                  Block(f"Body text of page {i} about topic {i}", (10.0, 40.0, 200.0, 300.0))]
        hits.append(Hit(f"doc{i}" + "0" * 60, f"/docs/file{i}.pdf", i + 1, 1.0 - i / 10,
                        text=" ".join(b.text for b in blocks), blocks=blocks, image_path=str(path),
                        bbox=(10.0, 40.0, 200.0, 300.0)))
    return hits


def test_generator_shows_each_page_image_and_text_and_cites_a_real_page(tiny_dirs: dict[str, str],
                                                                         tmp_path: Path) -> None:
    tiny_vlm_dir = tiny_dirs["2.5"]
    hits = _page_hits(tmp_path)
    gen = QwenVLGenerator(model=tiny_vlm_dir, max_new_tokens=12, max_pages=2, **PIX)
    vlm = load_vlm(tiny_vlm_dir)
    with _Capture(vlm.model) as cap:
        ans = gen.answer("What is on page one?", hits)
    assert cap.grids == [_expected_grid(h_img, **PIX) for h_img in _pages()[:2]]
    text = vlm.tokenizer.decode(cap.text[0][0])
    assert text.index("[file0.pdf p.1]") < text.index("[file1.pdf p.2]") and "[file2.pdf p.3]" not in text
    assert "Body text of page 1 about topic 1" in text and "ignore them" in text
    assert ans.text == gen.last_output.strip() and ans.contexts == hits[:2]
    # a random model cites nothing readable: the answer rests on the top page, with a real box
    assert ans.answerable and [(c.doc_id, c.page) for c in ans.citations] == [(hits[0].doc_id, 1)]
    assert ans.citations[0].bbox in {tuple(b.bbox) for b in hits[0].blocks} | {hits[0].bbox}


def test_generator_says_not_answerable_when_reranker_confidence_is_low(tmp_path: Path) -> None:
    hits = _page_hits(tmp_path)
    for h, p in zip(hits, [0.3, 0.2, 0.9]):
        h.scores["relevance"] = p
    # the model folder does not exist: it must not even be loaded when nothing passes
    gen = QwenVLGenerator(model=str(tmp_path / "no-model"), max_pages=2, min_confidence=0.5)
    ans = gen.answer("q", hits)
    assert (ans.text, ans.answerable, ans.citations, ans.confidence) == (NO_ANSWER, False, [], 0.3)
    assert "backend" not in gen.__dict__
    kept, conf = QwenVLGenerator(model="x", max_pages=3, min_confidence=0.5).select(hits)
    assert kept == [hits[2]] and conf == 0.9
    # a page the reranker filtered out (outside its top-k or under its threshold) is dropped too
    hits[2].scores["passes"] = 0.0
    hits[0].scores.update(relevance=0.8, passes=1.0)
    assert QwenVLGenerator(model="x", max_pages=3).select(hits)[0] == [hits[0]]


@pytest.mark.slow
def test_ragllava_on_llava_reads_yes_no_from_the_real_processor_path(qwen_vl_tokenizer_dir: Path,
                                                                      tmp_path: Path) -> None:
    from tests.tiny import save_tiny_llava

    model = str(save_tiny_llava(qwen_vl_tokenizer_dir, tmp_path / "llava"))
    images = _pages()
    cands = [Candidate(f"p{i}", f"caption {i}", image=img) for i, img in enumerate(images)]
    scores = RagLLaVAReranker(model=model, batch_size=3).score("q?", cands)
    vlm = load_vlm(model)
    assert not vlm.is_qwen  # images go to LLaVA's own processor, not the Qwen resizer
    tok = vlm.tokenizer
    yes, no = tok("Yes", add_special_tokens=False).input_ids[0], tok("No", add_special_tokens=False).input_ids[0]
    for cand, img, got in zip(cands, images, scores):
        chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT.format(
            caption=cand.text, query="q?")}]}]
        text = vlm.processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        batch = vlm.processor(text=[text], images=[img], return_tensors="pt")
        assert int((batch["input_ids"] == vlm.model.config.image_token_index).sum()) == 4  # 2x2 patches
        with torch.no_grad():
            logits = vlm.model(**batch).logits[0, -1]
        assert got == pytest.approx(float(torch.softmax(logits[[yes, no]], -1)[0]), abs=1e-5)
