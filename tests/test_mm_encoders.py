"""CLIP-family encoders on tiny random-weight models: shapes, normalisation, independent read-outs, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from mmrag import encoders  # noqa: E402
from mmrag.types import Page  # noqa: E402
from tests.tiny import tiny_hf_clip, tiny_open_clip_config  # noqa: E402

TEXTS = ["a red square", "the quarterly revenue table", "blue"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)) for h, w in [(50, 40), (40, 70), (64, 64)]]


@pytest.fixture(scope="module")
def clip_cfg(tmp_path_factory) -> Path:
    return tiny_open_clip_config(tmp_path_factory.mktemp("oc"))


@pytest.fixture(scope="module")
def clip(clip_cfg):
    return encoders.load("clip", model="mmrag-tiny-clip", pretrained=None, model_config=str(clip_cfg),
                         batch_size=2, progress=False, device="cpu")


@pytest.fixture(scope="module", params=["hf-clip", "siglip"])
def hf_enc(request, tmp_path_factory):
    folder = tiny_hf_clip(tmp_path_factory.mktemp(request.param), "clip" if request.param == "hf-clip" else "siglip")
    return encoders.load(request.param, model=str(folder), batch_size=2, progress=False, device="cpu")


def _unit_rows(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_open_clip_matches_its_own_model_and_batches_do_not_matter(clip):
    import open_clip
    import torch

    t = clip.encode_text(TEXTS)
    i = clip.encode_image(_images())
    assert t.shape == (3, 32) and i.shape == (3, 32) and clip.dim == 32
    _unit_rows(t)
    _unit_rows(i)
    with torch.no_grad():  # independent read-out straight from open_clip
        ref = clip.torch_model.encode_text(open_clip.get_tokenizer("mmrag-tiny-clip")(TEXTS)).numpy()
    np.testing.assert_allclose(t, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)
    clip.batch_size = 1
    try:
        np.testing.assert_allclose(clip.encode_image(_images()), i, atol=1e-5)
    finally:
        clip.batch_size = 2


def test_mixed_query_is_normalised_sum_and_pages_use_their_image(clip):
    img = _images()[0]
    q = clip.encode_query_mm(text="a red square", image=img)
    s = clip.encode_text(["a red square"], is_query=True) + clip.encode_image([img])
    np.testing.assert_allclose(q, s / np.linalg.norm(s), atol=1e-5)
    page = Page("doc", 1, 100, 100, text="ignored by CLIP", _image=img)
    np.testing.assert_allclose(clip.encode_page([page]), clip.encode_image([img]), atol=1e-6)
    assert clip.encode_text([]).shape == (0, 32)


def test_open_clip_saves_safetensors_and_reloads_through_registry(clip, tmp_path):
    clip.save_trained(tmp_path / "saved")
    assert (tmp_path / "saved" / "open_clip_model.safetensors").is_file()
    again = encoders.load("clip", model=str(tmp_path / "saved"), progress=False, device="cpu")
    np.testing.assert_allclose(again.encode_text(TEXTS), clip.encode_text(TEXTS), atol=1e-6)
    assert again.identity["model"] == str(tmp_path / "saved") and again.identity["dim"] == 32


def test_hf_dual_encoders_match_transformers_read_out(hf_enc):
    import torch

    t = hf_enc.encode_text(TEXTS)
    i = hf_enc.encode_image(_images())
    assert t.shape == i.shape == (3, hf_enc.dim)
    _unit_rows(t)
    _unit_rows(i)
    proc, model = hf_enc.processor, hf_enc.torch_model
    with torch.no_grad():
        if hf_enc.name == "siglip":  # fixed-length padding, no attention mask, as SigLIP was trained
            ids = proc(text=TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt")["input_ids"]
            out = model.text_model(input_ids=ids).pooler_output
        else:  # CLIP pools at the first [SEP] (eos) and projects
            batch = proc(text=TEXTS, padding=True, return_tensors="pt")
            h = model.text_model(**batch).last_hidden_state
            eos = (batch["input_ids"] == model.config.text_config.eos_token_id).int().argmax(-1)
            out = model.text_projection(h[torch.arange(3), eos])
    ref = out.numpy()
    np.testing.assert_allclose(t, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)


def test_options_and_missing_models_are_user_errors(clip_cfg, tmp_path):
    from mmrag.errors import ConfigError, ModelNotFound

    with pytest.raises(ConfigError, match="no option"):
        encoders.load("clip", model="mmrag-tiny-clip", pretrained=None, model_config=str(clip_cfg), colour="red")
    with pytest.raises(ModelNotFound):
        encoders.load("hf-clip", model=str(tmp_path / "nothing-here"), device="cpu")
    with pytest.raises(ModelNotFound):
        encoders.load("clip", model=str(tmp_path), device="cpu")  # a folder that is no saved model
    with pytest.raises(ConfigError):
        encoders.load("clip", model="mmrag-tiny-clip", pretrained=None, model_config=str(clip_cfg), dtype="int3")


def test_an_already_built_model_and_processor_pair_takes_the_same_path(hf_enc):
    pair = encoders.load(hf_enc.name, model=(hf_enc.torch_model, hf_enc.processor), progress=False, device="cpu")
    np.testing.assert_allclose(pair.encode_text(TEXTS), hf_enc.encode_text(TEXTS), atol=1e-6)
    np.testing.assert_allclose(pair.encode_image(_images()), hf_enc.encode_image(_images()), atol=1e-6)
