"""Fine-tuning end to end on a tiny CLIP: it learns (beats the untrained model), saves safetensors, CLI works."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

pytest.importorskip("open_clip")

from mmrag import encoders  # noqa: E402
from mmrag.train.loop import TrainConfig, recall_at_1, train_encoder  # noqa: E402
from mmrag.train.negatives import NegativeConfig  # noqa: E402
from mmrag.train.synthetic import make_corpus  # noqa: E402
from tests.tiny import TINY_OPEN_CLIP_RESNET, tiny_hf_clip, tiny_open_clip_config  # noqa: E402


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    cfg = tiny_open_clip_config(tmp_path_factory.mktemp("oc"), "mmrag-tiny-clip-rn", TINY_OPEN_CLIP_RESNET)
    return encoders.load("clip", model="mmrag-tiny-clip-rn", pretrained=None, model_config=str(cfg),
                         progress=False, device="cpu", dtype="float32")


def _t2i(enc, split) -> float:
    return recall_at_1(enc, [q for q, _ in split.t2i], [p for _, p in split.t2i], split.items)


@pytest.mark.slow  # ~10 s on an idle 2-core machine, over a minute under load
def test_training_beats_the_untrained_model_and_saves_safetensors(tiny_clip, tmp_path):
    import torch

    torch.set_num_threads(1)
    train, _ = make_corpus(seed=0, heldout=0.0, size=32, n_colours=2, n_words=2)
    before = _t2i(tiny_clip, train)
    enc = copy.deepcopy(tiny_clip)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-3, temperature=0.07, seed=0, freeze_batchnorm=False,
                      negatives=NegativeConfig(kind="modality", wrong_modality=1, same_modality=1))
    report = train_encoder(enc, train.items, train.pairs, cfg, out=tmp_path / "ft", progress=False)
    after = _t2i(enc, train)
    assert report["history"][-1]["loss"] < report["history"][0]["loss"]
    assert after >= before + 0.1, (before, after)  # measured: 0.02 → 0.19 after 4 epochs
    saved = encoders.load("clip", model=str(tmp_path / "ft"), progress=False, device="cpu")
    texts = [q.text for q, _ in train.t2i[:4]]
    np.testing.assert_allclose(saved.encode_text(texts), enc.encode_text(texts), atol=1e-5)
    assert not np.allclose(saved.encode_text(texts), tiny_clip.encode_text(texts), atol=1e-3)
    assert json.loads((tmp_path / "ft" / "train_report.json").read_text())["pairs"] == len(train.pairs)


@pytest.mark.slow  # ~20 s under load: builds and trains a CLIPModel through the CLI
def test_cli_train_encoder_on_jsonl_files(tmp_path):
    from typer.testing import CliRunner

    from mmrag.cli import app

    model = tiny_hf_clip(tmp_path / "tiny", "clip")
    train, _ = make_corpus(seed=1, heldout=0.0, size=32, n_colours=1, n_words=1)
    items, pairs = [], []
    for it in train.items:
        row = {"id": it.id, "text": it.text}
        if it.image is not None:
            name = it.id.replace("/", "_") + ".png"
            it.image.save(tmp_path / name)
            row["image"] = name
        items.append(row)
    for p in train.pairs[:24]:  # 3 steps of 8: the CLI path, not the learning, is under test here
        q = {"text": p.query.text} if p.query.image is None else {"image": _find(train, p.query.image) + ".png"}
        pairs.append({"query": q, "positive": p.positive})
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in items))
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in pairs))
    args = ["train", "encoder", "--items", str(tmp_path / "items.jsonl"), "--pairs", str(tmp_path / "pairs.jsonl"),
            "--encoder", "hf-clip", "--options", json.dumps({"model": str(model), "device": "cpu"}),
            "--out", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "8", "--json", "--quiet"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["pairs"] == len(pairs) and report["config"]["negatives"]["kind"] == "modality"
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert encoders.load("hf-clip", model=str(tmp_path / "out"), device="cpu").dim == 16
    bad = CliRunner().invoke(app, args[:-4] + ["--negatives", "hard", "--quiet"])
    assert bad.exit_code == 2 and "negatives" in bad.output
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"query": "x", "positive": "nope"}))
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 2 and "nope" in bad.output


def _find(split, image) -> str:
    return next(it.id for it in split.items if it.image is image).replace("/", "_")


@pytest.mark.slow  # Qwen-VL tokenizer from the SmolLM2 GGUF + ViT/LM forwards and backwards
def test_lora_fine_tuning_of_a_vlm_encoder_merges_and_reloads(qwen_vl_tokenizer_dir, tmp_path):
    pytest.importorskip("peft")
    from tests.tiny import tiny_qwen2_vl

    folder = tiny_qwen2_vl(qwen_vl_tokenizer_dir, tmp_path / "qwen2vl")
    small = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28, "device": "cpu", "progress": False}
    enc = encoders.load("mm-embed", model=str(folder), **small)
    train, _ = make_corpus(seed=2, heldout=0.0, size=56, n_colours=1, n_words=1)
    texts = ["notes on the report", "a picture of a red circle"]
    before = enc.encode_text(texts, is_query=True)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=5e-3, seed=0, lora={"r": 4, "alpha": 8},
                      negatives=NegativeConfig(wrong_modality=1, same_modality=1))
    report = train_encoder(enc, train.items, train.pairs[:12], cfg, out=tmp_path / "ft", progress=False)
    assert 0 < report["trainable_params"] < report["total_params"] / 10  # LoRA adapters only
    after = enc.encode_text(texts, is_query=True)
    assert not np.allclose(before, after, atol=1e-4) and report["history"][0]["loss"] > 0
    reloaded = encoders.load("mm-embed", model=str(tmp_path / "ft"), **small)  # merged weights, plain model
    assert not any("lora" in n for n, _ in reloaded.torch_model.named_parameters())
    np.testing.assert_allclose(reloaded.encode_text(texts, is_query=True), after, atol=1e-4)
