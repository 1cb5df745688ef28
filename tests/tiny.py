"""Builders for tiny random-weight models of real architectures (see NOTES-offline-models.md).

They exercise our real loading, prompting and read-out code; their scores mean nothing.
"""

from __future__ import annotations

from pathlib import Path

VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# Qwen2-VL's chat format, written here (the SmolLM2 template knows no images).
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_qwen_vl_tokenizer(smollm2_dir: Path, out: Path) -> Path:
    """Save SmolLM2's tokenizer with the vision special tokens and the Qwen-VL template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    tok.chat_template = QWEN_VL_CHAT_TEMPLATE
    tok.save_pretrained(out)
    return out


def tiny_causal_lm(vocab_size: int, arch: str = "llama", seed: int = 0, attn: str = "eager", layers: int = 2):
    """A ``layers``-layer (default 2), 64-wide causal LM (Llama or Qwen2) with random weights."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    torch.manual_seed(seed)
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    config = cls(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()


# --- image / multimodal encoders (issue 5) -------------------------------------------------
TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


# ResNet image tower: learns colours, shapes and positions from scratch in a few CPU steps
TINY_OPEN_CLIP_RESNET = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def tiny_open_clip_config(out: Path, name: str = "mmrag-tiny-clip", arch: dict | None = None) -> Path:
    """Write a tiny open_clip architecture JSON (load it with ``model=name, model_config=path``)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(arch or TINY_OPEN_CLIP))
    return path


def tiny_hf_clip(out: Path, kind: str = "clip", seed: int = 0) -> Path:
    """Save a tiny random ``CLIPModel`` or ``SiglipModel`` with the MiniLM BERT tokenizer into ``out``."""
    import torch
    from transformers import (AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor)

    from mmrag.bundled import minilm_path

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    text = dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)  # CLIP pools at the first eos
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                crop_size={"height": 32, "width": 32}),
                             tokenizer=tok)
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        proc = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def tiny_qwen2_vl_config(tok_dir: Path):
    """A tiny ``Qwen2VLConfig`` (64-wide text, 2-layer ViT) whose vision token ids match ``tok_dir``."""
    from transformers import AutoTokenizer, Qwen2VLConfig

    tok = AutoTokenizer.from_pretrained(tok_dir)
    ids = {t: tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"])


def tiny_qwen2_vl_image_processor():
    """Qwen2-VL image processor with a small pixel budget (at most 64 patches of 14 px)."""
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)


def tiny_colqwen2(tok_dir: Path, out: Path, seed: int = 0) -> Path:
    """Save a tiny random ``ColQwen2ForRetrieval`` (32-dim token vectors) and its processor into ``out``."""
    import torch
    from transformers import AutoTokenizer, ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor

    torch.manual_seed(seed)
    model = ColQwen2ForRetrieval(ColQwen2Config(vlm_config=tiny_qwen2_vl_config(tok_dir), embedding_dim=32))
    proc = ColQwen2Processor(image_processor=tiny_qwen2_vl_image_processor(),
                             tokenizer=AutoTokenizer.from_pretrained(tok_dir))
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def save_tiny_qwen_vl(tokenizer_dir: Path, out: Path, version: str = "2.5", seed: int = 0,
                      min_pixels: int = 28 * 28, max_pixels: int = 28 * 28 * 16) -> Path:
    """Save a random-weight Qwen2-VL ("2") or Qwen2.5-VL ("2.5") model and its processor in ``out``.

    Text: 64 wide, 2 layers; vision: 2 blocks, 14-px patches merged 2x2 (one token per 28x28).
    ``AutoModelForImageTextToText`` / ``AutoProcessor`` load the folder like a hub checkpoint.
    """
    import torch
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = tok.convert_tokens_to_ids
    end = ids("<|im_end|>")
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                bos_token_id=end, eos_token_id=end, pad_token_id=tok.pad_token_id)
    special = dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                   vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    if version == "2.5":
        vision = dict(depth=2, hidden_size=64, out_hidden_size=64, num_heads=4, intermediate_size=128,
                      fullatt_block_indexes=[1])
        config = tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
        model_cls, proc_cls = tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLProcessor
    elif version == "2":
        vision = dict(depth=2, embed_dim=64, hidden_size=64, num_heads=4, mlp_ratio=2)
        config = tf.Qwen2VLConfig(text_config=text, vision_config=vision, **special)
        model_cls, proc_cls = tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor
    else:
        raise ValueError(f"version must be '2' or '2.5', got {version!r}")
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.generation_config.eos_token_id = end
    model.generation_config.pad_token_id = tok.pad_token_id
    processor = proc_cls(image_processor=tf.Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels),
                         tokenizer=tok, video_processor=tf.Qwen2VLVideoProcessor(),
                         chat_template=QWEN_VL_CHAT_TEMPLATE)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def save_tiny_llava(tokenizer_dir: Path, out: Path, seed: int = 0) -> Path:
    """Save a random-weight LLaVA (tiny CLIP ViT on 28-px images + 2-layer Llama) and its processor."""
    import torch
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_tokens(["<image>"], special_tokens=True)
    template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    vision = tf.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                 image_size=28, patch_size=14)
    text = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2)
    config = tf.LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                            vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = tf.LlavaForConditionalGeneration(config).eval()
    image_processor = tf.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = tf.LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                                  vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                  chat_template=template)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_qwen2_vl(tok_dir: Path, out: Path, seed: int = 0) -> Path:
    """Save a tiny random ``Qwen2VLForConditionalGeneration`` and a Qwen2-VL processor into ``out``."""
    import torch
    from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration, Qwen2VLProcessor, Qwen2VLVideoProcessor

    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(tiny_qwen2_vl_config(tok_dir))
    proc = Qwen2VLProcessor(image_processor=tiny_qwen2_vl_image_processor(),
                            tokenizer=AutoTokenizer.from_pretrained(tok_dir),
                            video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_VL_CHAT_TEMPLATE)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def tiny_colpali(smollm2_dir: Path, out: Path, seed: int = 0) -> Path:
    """Save a tiny random ``ColPaliForRetrieval`` (PaliGemma: 2-layer SigLIP + 2-layer Gemma) and processor."""
    import torch
    from transformers import (AutoTokenizer, ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor,
                              PaliGemmaConfig, SiglipImageProcessor)

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})  # PaliGemma's image placeholder
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, projection_dim=64)
    text = dict(model_type="gemma", vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vlm = PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                          projection_dim=64)
    torch.manual_seed(seed)
    model = ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=32))
    images = SiglipImageProcessor(size={"height": 32, "width": 32})
    images.image_seq_length = (32 // 8) ** 2  # one placeholder token per patch
    ColPaliProcessor(image_processor=images, tokenizer=tok).save_pretrained(out)
    model.save_pretrained(out)
    return out


def tiny_sentence_transformer(out: Path, pooling: str) -> Path:
    """Save a tiny random BERT with ``pooling`` (cls, mean, max) as a sentence-transformers folder
    under ``out / "st"``, with the MiniLM tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mmrag.bundled import minilm_path

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(out / "bert")
    tok.save_pretrained(out / "bert")
    body = models.Transformer(str(out / "bert"), max_seq_length=16)
    st = SentenceTransformer(modules=[body, models.Pooling(32, pooling_mode=pooling)], device="cpu")
    st.save(str(out / "st"))
    return out / "st"


# --- training recipes (issue 14) -----------------------------------------------------------
# A word-level tokenizer small enough that a random 2-layer model can learn a ranking task in a
# few CPU steps: passage ids ``[1]``.. and the reasoning tags are single tokens, ``[`` then a
# letter spells FIRST's identifiers, and every other word outside ``words`` reads as <unk>.
SIMPLE_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_word_tokenizer(out: Path, words: list[str], max_id: int = 20, vision: bool = False) -> Path:
    """Save a ``PreTrainedTokenizerFast`` (WordLevel, whitespace + punctuation split) into ``out``;
    with ``vision``, Qwen's vision tokens and the Qwen2-VL chat template (see ``save_tiny_qwen_vl``)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"] + (VISION_TOKENS if vision else [])
    tags = ["<think>", "</think>", "<answer>", "</answer>"] + [f"[{i}]" for i in range(1, max_id + 1)]
    base = (["system", "user", "assistant", "[", "]", ",", ">", "(", ")", ".", ":", '"', "?"]
            + [chr(ord("A") + i) for i in range(26)] + [str(i) for i in range(max_id + 1)])
    vocab: dict[str, int] = {}
    for w in special + base + [w for w in words if w not in base]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation("isolated")])
    tok.add_special_tokens([AddedToken(t, special=True) for t in special])
    tok.add_tokens([AddedToken(t, special=False, single_word=False) for t in tags])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", bos_token=None)
    fast.chat_template = QWEN_VL_CHAT_TEMPLATE if vision else SIMPLE_CHAT_TEMPLATE
    fast.save_pretrained(out)
    return out


def save_tiny_causal_lm(tokenizer_dir: Path, out: Path, seed: int = 0, arch: str = "gpt2", layers: int = 1) -> Path:
    """A tiny random causal LM sized to ``tokenizer_dir``'s vocabulary, saved with that tokenizer so
    ``AutoModelForCausalLM`` / the rerankers load the folder by ``model:``. ``gpt2`` (learned absolute
    positions: one attention hop can tell which passage a word sits in, so a few CPU steps teach a
    ranking), or ``llama`` / ``qwen2`` (see ``tiny_causal_lm``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if arch == "gpt2":
        torch.manual_seed(seed)
        config = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=layers, n_head=4, n_positions=1024,
                            bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    else:
        model = tiny_causal_lm(len(tok), arch=arch, seed=seed, attn="sdpa", layers=layers)
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
