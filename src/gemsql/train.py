"""`gemsql train`: QLoRA (or LoRA) supervised fine-tuning with TRL's SFTTrainer.

setup() builds the model, tokenizer, dataset and trainer; train() runs it, resuming from the last
complete checkpoint in run_dir/checkpoints; the adapter lands in run_dir/adapter (written whole or
not at all) with the resolved config beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gemsql.config import Config
from gemsql.errors import GemsqlError
from gemsql.files import atomic_dir, write_json

log = logging.getLogger(__name__)
CONFIG_NAME = "gemsql_config.yaml"


@dataclass
class TrainResult:
    adapter_dir: Path
    train_loss: float | None
    steps: int
    metrics: dict


def adapter_dir(cfg: Config) -> Path:
    return cfg.run_dir / "adapter"


def checkpoints_dir(cfg: Config) -> Path:
    return cfg.run_dir / "checkpoints"


def peft_config(cfg: Config, tokenizer):
    """LoRA on the configured linear layers, plus what it takes for the model to learn to stop."""
    from peft import LoraConfig

    m = cfg.model
    extra: dict = {}
    if m.stop_token_training == "turn_tokens":
        # A LoRA on linear layers never learned to emit <end_of_turn> (measured): the base model barely saw the
        # turn tokens. Training just their embedding rows (tied to lm_head) fixes that for a few KB of adapter.
        from gemsql.model import TURN_TOKENS

        extra["trainable_token_indices"] = {"embed_tokens": [tokenizer.convert_tokens_to_ids(t) for t in TURN_TOKENS]}
    elif m.stop_token_training == "full_embeddings":
        extra["modules_to_save"] = ["lm_head", "embed_tokens"]  # the tutorial's choice
    return LoraConfig(
        r=m.lora_r,
        lora_alpha=m.lora_alpha,
        lora_dropout=m.lora_dropout,
        target_modules=m.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
        **extra,
    )


# Training fields that SFTConfig takes under the same name and meaning.
SAME_NAME_IN_TRL = (
    "seed", "max_length", "packing", "packing_strategy", "padding_free", "num_train_epochs", "max_steps",
    "per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "learning_rate",
    "lr_scheduler_type", "warmup_steps", "max_grad_norm", "logging_steps", "save_strategy", "save_steps",
    "save_total_limit", "push_to_hub", "hub_model_id", "assistant_only_loss", "torch_compile",
)


def use_liger(cfg: Config) -> bool:
    """The configured choice, or by default: on where its Triton kernels run (a CUDA GPU, liger-kernel installed)."""
    if cfg.train.use_liger_kernel is not None:
        return cfg.train.use_liger_kernel
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None


def sft_config(cfg: Config, output_dir: Path):
    """Map gemsql's training section onto TRL's SFTConfig (names are the same where TRL has them)."""
    import torch
    from trl import SFTConfig

    from gemsql.model import compute_dtype

    t = cfg.train
    dtype = compute_dtype(cfg.model)
    optim = t.optim
    if optim == "adamw_torch_fused" and not torch.cuda.is_available() and dtype != torch.float32:
        # Fused AdamW has no CPU kernel for the mixed bf16 params QLoRA leaves; plain AdamW is the same math.
        optim = "adamw_torch"
    return SFTConfig(
        output_dir=str(output_dir),
        **{name: getattr(t, name) for name in SAME_NAME_IN_TRL},
        optim=optim,
        use_liger_kernel=use_liger(cfg),
        report_to=[] if t.report_to == "none" else [t.report_to],
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=not torch.cuda.is_available(),
        include_num_input_tokens_seen="non_padding",
        dataset_num_proc=None,
    )


def setup(cfg: Config):
    """Model, tokenizer, dataset and trainer, ready to train."""
    from datasets import Dataset
    from peft import get_peft_model
    from trl import SFTTrainer

    from gemsql.data.prepare import load_prepared
    from gemsql.files import read_jsonl
    from gemsql.model import load_model, load_tokenizer

    prepared = load_prepared(cfg)
    rows = [{"messages": r["messages"]} for r in read_jsonl(prepared.train)]
    if not rows:
        raise GemsqlError("the training split is empty", file=str(prepared.train))
    tokenizer = load_tokenizer(cfg.model)
    model = get_peft_model(load_model(cfg.model), peft_config(cfg, tokenizer))
    _expose_head_bias(model)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(cfg, checkpoints_dir(cfg)),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    return trainer, tokenizer


def _expose_head_bias(model) -> None:
    """Let TRL's fused LM head see the output head's bias through PEFT's trainable-tokens wrapper.

    The wrapper forwards `weight` (with the trained rows merged in) but not `bias`, which TRL's chunked
    loss reads. Gemma's head has no bias, so copying the wrapped module's value (None) is exact.
    """
    head = model.get_output_embeddings()
    if not hasattr(head, "bias") and hasattr(head, "original_module"):
        head.bias = getattr(head.original_module, "bias", None)


def last_checkpoint(cfg: Config) -> str | None:
    """The newest checkpoint that finished writing (one without trainer_state.json is partial: skipped)."""
    ckpts = sorted(
        (p for p in checkpoints_dir(cfg).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for p in reversed(ckpts):
        if (p / "trainer_state.json").is_file() and any(p.glob("adapter_model.*")):
            return str(p)
        log.warning("skipping incomplete checkpoint %s", p)
    return None


def train(cfg: Config) -> TrainResult:
    """Fine-tune and save the adapter to run_dir/adapter."""
    trainer, tokenizer = setup(cfg)
    resume = last_checkpoint(cfg)
    if resume:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    return cleanup(cfg, trainer, tokenizer, result)


def cleanup(cfg: Config, trainer, tokenizer, result) -> TrainResult:
    out = adapter_dir(cfg)
    with atomic_dir(out) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        cfg.save(tmp / CONFIG_NAME)
        write_json(tmp / "train_metrics.json", {**result.metrics, "global_step": result.global_step})
    if cfg.train.push_to_hub:
        trainer.push_to_hub()
    log.info("adapter saved to %s", out)
    return TrainResult(out, result.training_loss, result.global_step, result.metrics)
