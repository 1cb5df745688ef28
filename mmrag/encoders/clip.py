"""open_clip CLIP: page images and text in one space (``open_clip.create_model_and_transforms``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.encoders.vision_base import DualTowerEncoder
from mmrag.errors import ConfigError, ModelNotFound

if TYPE_CHECKING:
    from PIL.Image import Image

ARCH_DIR = "open_clip_arch"  # save_trained writes the architecture as ARCH_DIR/<model name>.json
WEIGHTS_FILE = "open_clip_model.safetensors"


class OpenClipEncoder(DualTowerEncoder):
    """CLIP through open_clip.

    ``model`` is an open_clip architecture name (``ViT-L-14``), an ``hf-hub:`` id, a folder
    written by ``save_trained``, or an already-built ``(model, preprocess, tokenizer)`` triple.
    ``pretrained`` is an open_clip tag (``openai``, ``laion2b_s32b_b82k``) or a local checkpoint
    file; ``model_config`` a JSON architecture file registered with ``open_clip.add_model_config``
    (how custom or tiny architectures are named).
    """

    name = "clip"
    default_dpi = 72  # CLIP sees 224-336 px; rendering finer only costs time

    def __init__(self, model: Any = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k", *,
                 model_config: str | None = None, batch_size: int = 32, dtype: str = "auto",
                 device: str = "auto", dpi: int | None = None, progress: bool = True,
                 revision: str | None = None):
        super().__init__(batch_size=batch_size, dtype=dtype, device=device, dpi=dpi,
                         progress=progress, revision=revision)
        import open_clip

        if isinstance(model, (tuple, list)):
            self.torch_model, self.preprocess, self.tokenizer = model
            self.model_name = type(self.torch_model).__name__
            self.model_cfg: dict | None = None
            self.model_id = self.model_name
        else:
            name, pretrained = self._resolve(str(model), pretrained, model_config)
            try:
                self.torch_model, _, self.preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=pretrained, device=self.device)
            except RuntimeError as e:
                raise ModelNotFound(f"clip: cannot load {name} pretrained={pretrained!r}: {e}") from None
            self.tokenizer = open_clip.get_tokenizer(name)
            self.model_name = name
            self.model_cfg = open_clip.get_model_config(name)
            self.model_id = str(model) if pretrained is None or Path(str(model)).is_dir() else f"{model}:{pretrained}"
        self.torch_model = self.torch_model.to(self.device, self.torch_dtype).eval()
        self.dim = int(self._probe_dim())

    @staticmethod
    def _resolve(model: str, pretrained: str | None, model_config: str | None) -> tuple[str, str | None]:
        """Register local architectures; a saved folder gives both its config and its weights."""
        import open_clip

        folder = Path(model)
        if folder.is_dir():
            archs = sorted((folder / ARCH_DIR).glob("*.json"))
            if len(archs) != 1 or not (folder / WEIGHTS_FILE).is_file():
                raise ModelNotFound(f"clip: {folder} is not a saved open_clip model ({ARCH_DIR}/*.json + "
                                    f"{WEIGHTS_FILE}); give an open_clip model name or a folder written by `mmrag train encoder`")
            open_clip.add_model_config(archs[0])
            return archs[0].stem, str(folder / WEIGHTS_FILE)
        if model_config is not None:
            path = Path(model_config)
            if not path.is_file():
                raise ConfigError(f"clip: model_config {path} not found")
            open_clip.add_model_config(path)
            if open_clip.get_model_config(model) is None:
                model = path.stem  # open_clip names a registered file by its stem
        if pretrained and Path(pretrained).suffix in (".bin", ".pt", ".safetensors") and not Path(pretrained).is_file():
            raise ModelNotFound(f"clip: checkpoint {pretrained} not found")
        return model, pretrained

    def _probe_dim(self) -> int:
        cfg = self.model_cfg or {}
        if "embed_dim" in cfg:
            return cfg["embed_dim"]
        return int(self._text_features(["a"], False).shape[-1])

    def _text_features(self, texts: list[str], is_query: bool) -> Any:
        tokens = self.tokenizer(texts).to(self.device)
        return self.torch_model.encode_text(tokens)

    def _image_features(self, images: list["Image"]) -> Any:
        import torch

        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device, self.torch_dtype)
        return self.torch_model.encode_image(pixels)

    def save_trained(self, out: Path) -> None:
        from safetensors.torch import save_file

        if self.model_cfg is None:
            raise ConfigError("clip: a model passed in as objects has no open_clip config to save with it")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.torch_model.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        (out / ARCH_DIR).mkdir(exist_ok=True)
        (out / ARCH_DIR / f"{self.model_name}.json").write_text(json.dumps(self.model_cfg, indent=2))
