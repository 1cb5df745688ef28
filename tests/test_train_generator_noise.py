"""RagLLaVA noise-injected generator training: the noise at both levels, and a tiny model trained with it."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

from tests.train_tasks import SEEDS_3 as SEEDS
from tests.train_tasks import answer_accuracy, mean_std, qa_examples, tiny_ranking_lm


def test_mix_noise_keeps_the_evidence_and_adds_other_questions_pages():
    from mmrag.train.generator_noise import mix_noise

    examples = qa_examples(6, 0)
    mixed = mix_noise(examples, 2, random.Random(0))
    for e, pages in zip(examples, mixed):
        ids = [p.doc_id for p in pages]
        assert len(ids) == 3 and len(set(ids)) == 3
        assert e.contexts[0].doc_id in ids  # the evidence stays
    assert any(pages[0].doc_id != e.contexts[0].doc_id for e, pages in zip(examples, mixed))  # shuffled


def test_gaussian_noise_has_the_asked_std_and_only_acts_in_training():
    torch = pytest.importorskip("torch")
    from mmrag.train.generator_noise import add_token_noise, gaussian_noise

    x = torch.zeros(200, 100)
    noisy = gaussian_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(0.5, rel=0.03) and abs(float(noisy.mean())) < 0.01
    assert gaussian_noise(x, 0.0) is x

    from tests.tiny import tiny_causal_lm

    model = tiny_causal_lm(50, arch="llama")
    ids = torch.tensor([[1, 2, 3]])
    clean = model.get_input_embeddings()(ids)
    hook = add_token_noise(model, 0.3, visual=False)
    model.eval()
    assert torch.equal(model.get_input_embeddings()(ids), clean)
    model.train()
    assert not torch.equal(model.get_input_embeddings()(ids), clean)
    hook.remove()
    assert torch.equal(model.get_input_embeddings()(ids), clean)


def test_load_qa_reads_rows_and_rejects_a_bad_one(tmp_path: Path):
    from mmrag.errors import ConfigError
    from mmrag.train.generator_noise import load_qa

    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "q?", "answer": "a", "contexts": [{"doc_id": "d", "page": 2,
                                                                             "text": "t", "image": "p.png"}]}) + "\n")
    [e] = load_qa(path)
    assert e.contexts[0].page == 2 and e.contexts[0].image_path == str(tmp_path / "p.png")
    path.write_text(json.dumps({"question": "q?"}) + "\n")
    with pytest.raises(ConfigError, match="qa.jsonl:1"):
        load_qa(path)


@pytest.mark.slow
def test_noise_injected_training_of_a_causal_lm(tmp_path: Path):
    """Loss falls; with two irrelevant pages in every held-out prompt the trained model answers with a
    treasure word where the untrained one never does (which of the four it rarely gets right yet)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("trl")
    from mmrag.train.generator_noise import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    before, after, start, end = [], [], [], []
    try:
        for seed in SEEDS:
            base = tiny_ranking_lm(tmp_path, seed)
            held = qa_examples(30, 100 + seed, prefix="h")
            before.append(answer_accuracy(base, held, 2, seed))
            out = tmp_path / f"gen{seed}"
            s = train(qa_examples(400, seed), out, {"model": str(base), "max_steps": 100, "lr": 1e-2, "batch_size": 8,
                                                    "noise_pages": 2, "token_noise": 0.1, "seed": seed,
                                                    "progress": False, "scheduler": "constant"})
            after.append(answer_accuracy(out, held, 2, seed))
            start.append(statistics.mean(s["loss"][:10]))
            end.append(statistics.mean(s["loss"][-10:]))
            assert s["kind"] == "causal" and s["generator"] == "hf-causal"
    finally:
        torch.set_num_threads(threads)
    print(f"\ngenerator noise-injection: held-out answer accuracy {mean_std(before)} -> {mean_std(after)}; "
          f"loss {mean_std(start)} -> {mean_std(end)} (3 seeds)")
    assert statistics.mean(end) < statistics.mean(start) / 2
    assert statistics.mean(after) > statistics.mean(before)


@pytest.mark.slow
def test_noise_injected_training_of_a_qwen_vl_model(tmp_path: Path):
    """The Qwen-VL path: page images in the qwen-vl generator's request, Gaussian noise on the pixels
    entering the vision tower (seen by a hook after ours), and a folder the qwen-vl generator loads."""
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    pytest.importorskip("qwen_vl_utils")
    from mmrag.generate.qwen_vl import QwenVLGenerator
    from mmrag.train.generator_noise import QAExample, train
    from mmrag.types import Hit
    from tests.train_tasks import page_examples, tiny_page_vlm

    base = tiny_page_vlm(tmp_path, 0)
    examples = []
    for p in page_examples(6, 0, tmp_path / "pages", size=1):
        examples.append(QAExample("find the treasure", "gold", [Hit(doc_id=p.qid, path=f"{p.qid}.pdf", page=1, score=1.0,
                                                                     text="gold", image_path=p.images[0])]))
    seen: list[float] = []  # spread of the pixels the tower's patch embedding receives in training
    out = tmp_path / "gen-vl"
    opts = {"model": str(base), "max_steps": 3, "lr": 1e-3, "batch_size": 2, "noise_pages": 1, "token_noise": 0.5,
            "progress": False, "min_pixels": 28 * 28, "max_pixels": 4 * 28 * 28}
    import transformers

    original = transformers.AutoModelForImageTextToText.from_pretrained

    def loaded_with_probe(*args, **kwargs):  # the real model, plus a hook that records what the tower sees
        net = original(*args, **kwargs)
        def record(module, a, kw):  # the tower's patch embedding: what follows the noise hook
            x = a[0] if a else kw.get("hidden_states")
            seen.append(float(x.float().std()))

        net.model.visual.patch_embed.register_forward_pre_hook(record, with_kwargs=True)
        return net

    transformers.AutoModelForImageTextToText.from_pretrained = loaded_with_probe
    try:
        s = train(examples, out, opts)
    finally:
        transformers.AutoModelForImageTextToText.from_pretrained = original
    assert s["kind"] == "qwen-vl" and len(s["loss"]) == 3 and seen
    clean = QwenVLGenerator(model=str(base), max_new_tokens=2, min_pixels=28 * 28, max_pixels=4 * 28 * 28)
    ids = clean.backend.inputs([clean.messages("find the treasure", examples[0].contexts)])
    assert float(ids["pixel_values"].float().std()) < 0.3 < 0.45 < min(seen)  # noise of std 0.5 in training
    gen = QwenVLGenerator(model=str(out), max_new_tokens=2, min_pixels=28 * 28, max_pixels=4 * 28 * 28)
    assert isinstance(gen.answer("find the treasure", examples[0].contexts).text, str)


def test_cli_train_generator_reports_a_missing_file_with_exit_2(tmp_path: Path):
    from typer.testing import CliRunner

    from mmrag.cli import app

    result = CliRunner().invoke(app, ["train", "generator", "--data", str(tmp_path / "nope.jsonl"), "--out",
                                      str(tmp_path / "o"), "--noise-injection"])
    assert result.exit_code == 2 and "no QA file" in result.output


@pytest.mark.slow
def test_cli_train_generator_json_summary(tmp_path: Path):
    """`mmrag train generator --noise-injection --json`: only the summary on stdout, the model saved."""
    import subprocess
    import sys

    base = tiny_ranking_lm(tmp_path, 0)
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": e.question, "answer": e.answer, "contexts": [
        {"doc_id": h.doc_id, "page": h.page, "text": h.text} for h in e.contexts]}) + "\n" for e in qa_examples(4, 0)))
    out = tmp_path / "gen"
    proc = subprocess.run([sys.executable, "-m", "mmrag", "train", "generator", "--data", str(data), "--out", str(out),
                           "--noise-injection", "--noise-pages", "1", "--model", str(base), "--max-steps", "2",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["options"]["noise_pages"] == 1 and len(summary["loss"]) == 2
    assert (out / "model.safetensors").is_file() and (out / "train_summary.json").is_file()
