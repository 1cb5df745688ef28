"""Thin runners around TRL's SFTTrainer and GRPOTrainer, shared by the reasoning recipes.

Rows are plain dicts: SFT takes ``{"prompt", "completion"}`` (prompt already in the chat format
the reranker sends), GRPO takes ``{"prompt", ...}`` plus the columns its reward functions read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from mmrag.train import llm_common as common

GRPO_OPTIONS = {
    "num_generations": 8,  # completions sampled per prompt (the GRPO group)
    "max_completion_length": 512,
    "temperature": 1.0,
    "beta": 0.0,  # KL weight against the reference model (0: no reference copy kept)
    "use_vllm": False,  # GPU only: roll out with vLLM (pip install vllm)
}


def _quiet(trainer: Any, opts: dict) -> Any:
    """Without progress, drop the callback that prints every log line to stdout."""
    if not opts["progress"]:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def sft(model: Any, processing_class: Any, rows: Sequence[dict], out: Path, opts: dict, *,
        max_steps: int | None = None, lr: float | None = None, **extra: Any) -> tuple[Any, list[float]]:
    """Supervised fine-tuning on prompt → completion (loss on the completion only); returns the
    trained model and its per-step losses."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    kwargs = common.trainer_kwargs(Path(out) / "sft", opts)
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    if lr is not None:
        kwargs["learning_rate"] = float(lr)
    args = SFTConfig(**kwargs, completion_only_loss=True, **extra)
    trainer = _quiet(SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(list(rows)),
                                processing_class=processing_class, peft_config=common.lora_config(opts)), opts)
    trainer.train()
    return common.merge_lora(trainer.model), common.history(trainer)


def grpo(model: Any, processing_class: Any, rows: Sequence[dict], rewards: list[Callable], out: Path, opts: dict,
         *, weights: list[float] | None = None, max_steps: int | None = None) -> tuple[Any, dict]:
    """GRPO with ``rewards`` (TRL reward functions); returns the model (LoRA merged) and the
    per-step histories of the loss and of each reward."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    kwargs = common.trainer_kwargs(Path(out) / "grpo", opts)
    group = int(opts["num_generations"])
    kwargs["per_device_train_batch_size"] = int(opts["batch_size"]) * group  # batch_size = prompts per step
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    extra: dict[str, Any] = {}
    if opts["use_vllm"]:
        extra.update(use_vllm=True, vllm_mode="colocate")
    args = GRPOConfig(**kwargs, num_generations=group, max_completion_length=int(opts["max_completion_length"]),
                      temperature=float(opts["temperature"]), beta=float(opts["beta"]), reward_weights=weights,
                      **extra)
    trainer = _quiet(GRPOTrainer(model=model, reward_funcs=rewards, args=args,
                                 train_dataset=Dataset.from_list(list(rows)), processing_class=processing_class,
                                 peft_config=common.lora_config(opts)), opts)
    trainer.train()
    hist = {"loss": common.history(trainer), "reward": common.history(trainer, "reward")}
    for f in rewards:
        hist[f.__name__] = common.history(trainer, f"rewards/{f.__name__}/mean")
    return common.merge_lora(trainer.model), hist
