"""`gemsql train`: QLoRA (or LoRA, or full) supervised fine-tuning with TRL's SFTTrainer.

setup() builds the model, tokenizer, dataset and trainer; train() runs it, resuming from the last
complete checkpoint in run_dir/checkpoints; the adapter lands in run_dir/adapter (with `finetuning: full`
the whole model in run_dir/full_model), written whole or not at all, with the resolved config beside it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from gemsql.config import Config
from gemsql.distributed import fsdp2_launch, is_main, main_first, shard_fsdp2, wait_for_everyone
from gemsql.errors import GemsqlError
from gemsql.files import write_json

log = logging.getLogger(__name__)
CONFIG_NAME = "gemsql_config.yaml"


@dataclass
class TrainResult:
    trained_dir: Path
    train_loss: float | None
    steps: int
    metrics: dict


def trained_dir(cfg: Config) -> Path:
    """Where training writes: the LoRA adapter, or the whole model under `finetuning: full`."""
    return cfg.run_dir / ("full_model" if cfg.model.finetuning == "full" else "adapter")


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
    "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
    "lr_scheduler_type", "warmup_steps", "max_grad_norm", "logging_steps", "save_strategy", "save_steps",
    "save_total_limit", "push_to_hub", "hub_model_id", "assistant_only_loss",
)


def use_compile(cfg: Config) -> bool:
    """The configured choice, or by default: on for an adapter on a text-only model (Gemma 3 270M/1B) on a CUDA GPU
    that Triton compiles for (compute capability 7.0 or more, Triton installed), unless an engine that wraps or
    partitions the layers itself (FSDP1, DeepSpeed) places the weights. That is where it has been measured (the H200:
    faster, and end to end no lower a score); full fine-tuning and the image-text checkpoints (4B and larger) have not
    been compiled on a GPU, so they stay eager unless asked."""
    if cfg.train.torch_compile is not None:
        return cfg.train.torch_compile
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM

    from gemsql.model import engine_places_weights, model_class, resolve_model

    return (cfg.model.finetuning == "lora" and torch.cuda.is_available()
            and torch.cuda.get_device_capability() >= (7, 0) and importlib.util.find_spec("triton") is not None
            and not engine_places_weights()
            and model_class(resolve_model(cfg.model.model_name_or_path)) is AutoModelForCausalLM)


def recompute_mode(cfg: Config) -> str | None:
    """What the decoder layers recompute in the backward: None (nothing; every activation kept), "full",
    "selective" or "lean" (TrainConfig.recompute). gradient_checkpointing as configured, or by default on where
    partial recompute applies: compiled layers (use_compile) over 4-bit matmuls. There it recomputes leanly (each
    layer keeps its attention's output and its q, v and down projections' outputs): on the H200 at 16 x 512 it kept
    every model measured under the tutorial's peak at the same tokens a micro-batch (the 270M 2.95 GiB against 3.76,
    the 1B 5.49 against 6.93, the 4B 13.86 against 16.11) at 0.93x to 0.97x selective's tokens/s (one run pair each
    on the 1B and 4B; the 270M 0.72x, 0.95x and 0.96x in three), where selective peaked above the tutorial on the 1B
    and 4B (8.23 and 19.18 GiB); the built-in epoch scored 95.8 percent and Spider 42.3 (twenty-second session,
    docs/benchmarks.md). Elsewhere recompute means every op again (transformers' checkpointing of uncompiled layers,
    or compiled layers without 4-bit matmuls to keep) at about 0.7x the tokens/s, so it waits to be asked for.
    recompute by default: lean where it applies, else full."""
    t = cfg.train
    partial_applies = cfg.model.quantization == "4bit" and use_compile(cfg)
    on = t.gradient_checkpointing if t.gradient_checkpointing is not None else partial_applies
    if not on:
        return None
    if t.recompute is not None:
        return t.recompute
    return "lean" if partial_applies else "full"


def compile_mode(cfg: Config) -> str:
    """How the compiled layers run (TrainConfig.torch_compile_mode): as configured, or by default as CUDA graphs
    ("reduce-overhead") where they have been measured, and torch.compile's "default" elsewhere. Measured: compiled
    layers (use_compile) over 4-bit matmuls, recomputing partially (lean or selective) or not at all, on a CUDA GPU,
    in one process or under DDP. On the H200 with selective recompute at 16 x 512: one process, the 270M at 1.59x to
    2.08x the tokens/s of the default mode (three run pairs; 3.51 against 3.32 GiB, under the tutorial's 3.76), the 1B
    at 1.40x, the 4B at 1.01x to 1.06x, the built-in epoch scoring 95.2 against 94.9 percent in 1.99 against 2.88
    minutes (nineteenth to twenty-first sessions); under DDP, the 270M on two GPUs at 1.78x one GPU's tokens/s with
    two micro-batches a step (median of three launches; 1.88x in one pair; the default mode's pair: 1.59x; twenty-first,
    twentieth and seventeenth sessions). With lean recompute, graphs on both sides of each pair, in one process only
    (twenty-second session; lean under DDP not measured yet). Not measured, so left to be asked for: full recompute
    (the tutorial's), LoRA without quantization, and sharded launches (FSDP, DeepSpeed)."""
    if cfg.train.torch_compile_mode is not None:
        return cfg.train.torch_compile_mode
    import torch

    from gemsql.distributed import sharded_launch
    from gemsql.model import PARTIAL_RECOMPUTE

    measured = (use_compile(cfg) and torch.cuda.is_available() and not sharded_launch()
                and cfg.model.quantization == "4bit" and recompute_mode(cfg) in (None, *PARTIAL_RECOMPUTE))
    return "reduce-overhead" if measured else "default"


def use_liger(cfg: Config) -> bool:
    """The configured choice, or by default: on where its Triton kernels run (a CUDA GPU, liger-kernel installed),
    unless the layers are compiled (torch.compile fuses their norms and activations itself)."""
    if cfg.train.use_liger_kernel is not None:
        return cfg.train.use_liger_kernel
    import importlib.util

    import torch

    return (not use_compile(cfg) and torch.cuda.is_available()
            and importlib.util.find_spec("liger_kernel") is not None)


# With padding-free packing every micro-batch has its own length, and on a GPU cuDNN's attention sets up each new
# shape (about 3 ms of CPU a call in the H200 profile): padding to a multiple of 128 leaves a handful of shapes.
GPU_PAD_MULTIPLE = 128


def pad_multiple(cfg: Config) -> int | None:
    """The configured multiple, or by default GPU_PAD_MULTIPLE on a CUDA GPU and no padding elsewhere."""
    if cfg.train.pad_to_multiple_of is not None:
        return None if cfg.train.pad_to_multiple_of == 1 else cfg.train.pad_to_multiple_of
    import torch

    return GPU_PAD_MULTIPLE if torch.cuda.is_available() else None


def packed_rows(cfg: Config) -> bool:
    """Whether training collates packed sequences as rows (TrainConfig.packed_rows): only where transformers builds the
    attention mask from each row's position ids (SDPA, eager). FlashAttention takes a packed row's boundaries from
    its position ids only in a batch of one row, so it keeps TRL's flattened layout."""
    t = cfg.train
    return (t.packed_rows and t.packing and t.packing_strategy in ("bfd", "bfd_split")
            and cfg.model.attn_implementation in ("auto", "sdpa", "eager"))


@dataclass
class PackedRows:
    """Collates a micro-batch of packed sequences (TRL's bfd packing: `input_ids`, `labels`, `seq_lengths`) one row
    each, padded to the longest (up to a multiple of `pad_to_multiple_of`): TRL's collator without its padding-free
    flattening, and without an attention mask, so that transformers builds the mask from the position ids, which
    restart at every example: block-diagonal in each row, no example sees another. A padding token is a sequence of
    its own (position 0) and carries no loss, nor does an example's first token (it is not predicted from the one
    before it)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.rows = DataCollatorForLanguageModeling(self.pad_token_id, return_position_ids=True,
                                                    pad_to_multiple_of=self.pad_to_multiple_of)

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.rows(examples)
        del batch["attention_mask"]
        batch["labels"][batch["position_ids"] == 0] = -100
        return batch


def as_run(cfg: Config) -> dict:
    """The settings a config may leave unset for the machine to decide, as this run decided them. They are recorded
    beside the config (train_metrics.json, "as_run"), which keeps them unset so that it decides again elsewhere: a run
    read back later still says what it trained with."""
    compiled = use_compile(cfg)
    return {"torch_compile": compiled, "torch_compile_mode": compile_mode(cfg) if compiled else None,
            "recompute": recompute_mode(cfg), "use_liger_kernel": use_liger(cfg),
            "pad_to_multiple_of": pad_multiple(cfg), "packed_rows": packed_rows(cfg)}


def cudnn_in_training(cfg: Config) -> bool:
    """Whether SDPA may use cuDNN while training (ModelConfig.cudnn_attention; auto decides by micro-batch size)."""
    from gemsql.model import cudnn_allowed

    t = cfg.train
    return cudnn_allowed(cfg.model.cudnn_attention, decoding=False,
                         micro_batch_tokens=t.per_device_train_batch_size * t.max_length)


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
        # transformers' name for recompute since 5.2x (`gradient_checkpointing`, the tutorial's and gemsql's name, is
        # its deprecated alias there, with a warning in every run); compiled layers recompute inside their compiled
        # region instead (gemsql.model.compile_layers)
        activation_checkpointing=recompute_mode(cfg) is not None and not use_compile(cfg),
        use_liger_kernel=use_liger(cfg),
        pad_to_multiple_of=pad_multiple(cfg),
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
    from transformers import set_seed
    from trl import SFTTrainer

    from gemsql.data.prepare import load_prepared
    from gemsql.files import read_jsonl
    from gemsql.model import PARTIAL_RECOMPUTE, load_model, load_tokenizer

    recompute = recompute_mode(cfg)
    if recompute in PARTIAL_RECOMPUTE and cfg.model.quantization != "4bit":
        raise GemsqlError(f"{recompute} keeps some 4-bit matmuls' outputs, and with quantization none there are "
                          "no 4-bit matmuls: use recompute full", field="recompute")
    prepared = load_prepared(cfg)
    rows = [{"messages": r["messages"]} for r in read_jsonl(prepared.train)]
    if not rows:
        raise GemsqlError("the training split is empty", file=str(prepared.train))
    with main_first():  # under a launcher, one process converts the embedded model; the others reuse it
        tokenizer = load_tokenizer(cfg.model)
    # Seeded before the adapter exists: LoRA's A matrices are drawn at random when it is created, before the
    # trainer seeds anything, so without this two runs of one config (or a restart from scratch) differ.
    set_seed(cfg.train.seed)
    # The training arguments come first: under DeepSpeed ZeRO-3 they tell from_pretrained to build the model
    # already sharded.
    args = sft_config(cfg, checkpoints_dir(cfg))
    _check_engine(cfg)
    if cfg.model.finetuning == "full":
        # Every weight trains. The weights stay in float32 and the trainer computes in the compute dtype (autocast):
        # an AdamW step of lr 5e-5 on a bf16 weight of 0.03 is under half its rounding step and would be lost. The
        # embedding trains whole, so the turn tokens need nothing of their own.
        import torch

        model = load_model(cfg.model, quantize=False, weights_dtype=torch.float32)
    else:
        model = get_peft_model(load_model(cfg.model), peft_config(cfg, tokenizer))
        _expose_head_bias(model)
    # DDP's settings depend on the model (an image-text one keeps the unused-weight search): set once it exists
    args.ddp_find_unused_parameters, args.ddp_broadcast_buffers = ddp_settings(cfg, model)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[CheckpointSeal()],
    )
    if cfg.model.turn_rows_as_columns:
        # Once the trainer exists (TRL's fused loss looks the head up at each call); not with Liger (_check_engine)
        from gemsql.model.turn_rows import train_rows_as_columns

        train_rows_as_columns(trainer.model)
    if packed_rows(cfg):
        # TRL refuses a collator of one's own with bfd packing (it needs its padding-free layout, which this keeps but
        # for the flattening), so it replaces TRL's once the trainer is built
        trainer.data_collator = PackedRows(tokenizer.pad_token_id, pad_multiple(cfg))
    if fsdp2_launch():
        # Only now: TRL casts a 4-bit model's adapter to bf16 as the trainer is built, and FSDP2 keeps the dtypes it
        # found (sharded first, the H200 runs failed at the first optimizer step on mismatched dtypes)
        shard_fsdp2(trainer.model, cfg.train.fsdp_layers_per_unit)
    if use_compile(cfg):
        # After sharding, in place: FSDP2's hooks stay on each layer's call (the trainer itself is not asked to
        # compile: it would trace the whole model, every layer again; 74 s against 15 s for the tiny test model on
        # the CPU)
        from gemsql.model import compile_layers

        mode = compile_mode(cfg)
        n = compile_layers(trainer.model, recompute, mode)
        log.info("compiling %d layers (mode %s)%s", n, mode,
                 f", each recomputing its forward in the backward ({recompute})" if recompute else "")
        if mode == "reduce-overhead" and cfg.train.gradient_accumulation_steps > 1:
            from gemsql.model import copy_grads_out_of_graphs

            copy_grads_out_of_graphs(trainer.model)  # else the next micro-batch's replay writes over the gradients
    elif recompute in PARTIAL_RECOMPUTE:
        log.warning("recompute: %s applies to compiled layers (torch_compile); these layers are not compiled, "
                    "so transformers' checkpointing recomputes every op", recompute)
    return trainer, tokenizer


def ddp_settings(cfg: Config, model) -> tuple[bool, bool]:
    """DDP's find_unused_parameters and broadcast_buffers: as configured, else off where they buy nothing.

    The trainer searches every step's autograd graph for trainable weights without a gradient whenever the model is
    not a bare transformers model (a PEFT one included). A text model uses every weight it trains, so the search only
    costs; an image-text model trained on text leaves its vision tower's weights (and their LoRA) unused, so it keeps
    the search. Gemma's buffers (rotary tables) never change in training, so rank 0 need not send them before each
    forward. On two H200s, both off took 6 of the 270M's 14 collectives a step away and 8,538 -> 11,196 tokens/s
    (back-to-back runs whose identical one-GPU baselines differed by a fifth: docs/benchmarks.md)."""
    t = cfg.train
    text_only = getattr(model.config, "vision_config", None) is None
    find_unused = t.ddp_find_unused_parameters if t.ddp_find_unused_parameters is not None else not text_only
    broadcast = t.ddp_broadcast_buffers if t.ddp_broadcast_buffers is not None else False
    return find_unused, broadcast


def _check_engine(cfg: Config) -> None:
    """Refuse, before loading anything, what the launch engine cannot train.

    Under DeepSpeed ZeRO-3 the embedding matrix is partitioned, and the weight PEFT's trainable-token rows put
    together from it is not a ZeRO parameter: TRL's fused LM head fails on it (`'Tensor' object has no attribute
    'ds_status'`, seen on the H200). Compiled layers have run alone, under DDP and under FSDP2, not under the engines
    that wrap or partition the layers themselves (FSDP1, DeepSpeed). turn_rows_as_columns holds a parameter that
    sharded launches replace, and replaces the final norm that Liger's kernels patch."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    from gemsql.distributed import sharded_launch
    from gemsql.model import engine_places_weights

    if cfg.train.torch_compile is True and engine_places_weights():  # by default it stays off there
        raise GemsqlError(
            "compiled layers are not supported under FSDP1 or DeepSpeed; launch with "
            "configs/accelerate/fsdp2_qlora.yaml (FSDP2) or ddp.yaml, or set --torch_compile false",
            field="torch_compile",
        )
    if cfg.model.turn_rows_as_columns and sharded_launch():
        raise GemsqlError("turn_rows_as_columns holds PEFT's row parameter, which FSDP and DeepSpeed replace with "
                          "shards of their own: launch alone or under DDP, or set it false",
                          field="turn_rows_as_columns")
    if cfg.model.turn_rows_as_columns and use_liger(cfg):
        raise GemsqlError("turn_rows_as_columns replaces the final norm, which Liger's kernels patch by name as "
                          "training starts: set use_liger_kernel false (compiled layers, the GPU default, leave "
                          "it off)", field="turn_rows_as_columns")
    lora = cfg.model.finetuning == "lora"
    if lora and cfg.model.stop_token_training == "turn_tokens" and is_deepspeed_zero3_enabled():
        raise GemsqlError(
            "'turn_tokens' does not run under DeepSpeed ZeRO-3 (its trainable embedding rows are not ZeRO "
            "parameters); use --stop_token_training none (answers still end at the statement's end), or the FSDP "
            "or DDP launch configs", field="stop_token_training",
        )


def _expose_head_bias(model) -> None:
    """Let TRL's fused LM head see the output head's bias through PEFT's trainable-tokens wrapper.

    The wrapper forwards `weight` (with the trained rows merged in) but not `bias`, which TRL's chunked
    loss reads. Gemma's head has no bias, so copying the wrapped module's value (None) is exact.
    """
    head = model.get_output_embeddings()
    if not hasattr(head, "bias") and hasattr(head, "original_module"):
        head.bias = getattr(head.original_module, "bias", None)


SEAL_NAME = "gemsql_complete.json"


class CheckpointSeal(TrainerCallback):
    """Trainer callback: once a checkpoint is fully written, record the sha256 of each of its files.

    transformers writes checkpoints in place, file by file; a process killed meanwhile (or a full disk)
    leaves a folder that looks like a checkpoint. Only a sealed one whose files still match is resumed.
    """

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            from gemsql.files import file_digests

            write_json(folder / SEAL_NAME, file_digests(folder))


def checkpoint_problem(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None when it is sealed and intact."""
    import json

    from gemsql.files import file_digests

    seal = folder / SEAL_NAME
    if not seal.is_file():
        return "not sealed (its writer stopped before the end)"
    try:
        expected = json.loads(seal.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable seal ({e})"
    actual = file_digests(folder)
    actual.pop(SEAL_NAME, None)
    missing = sorted(set(expected) - set(actual))
    if missing:
        return f"missing {', '.join(missing)}"
    changed = sorted(name for name, digest in expected.items() if actual[name] != digest)
    if changed:
        return f"changed since written: {', '.join(changed)}"
    return None


def last_checkpoint(cfg: Config) -> str | None:
    """The newest checkpoint that was completely written and is unchanged; others are skipped with a warning."""
    ckpts = sorted(
        (p for p in checkpoints_dir(cfg).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for p in reversed(ckpts):
        problem = checkpoint_problem(p)
        if problem is None:
            return str(p)
        log.warning("skipping checkpoint %s: %s; using an earlier one", p, problem)
    return None


def train(cfg: Config) -> TrainResult:
    """Fine-tune and save the adapter (or the whole model) to trained_dir(cfg)."""
    from gemsql.model import attention_kernels

    trainer, tokenizer = setup(cfg)
    resume = last_checkpoint(cfg)
    finished = _finished_state(cfg, resume) if resume else None
    if finished is not None:
        # Killed after the last checkpoint but before the adapter was written: resuming would train a step past
        # max_steps (measured), so the weights are taken from that checkpoint as they are.
        from transformers.trainer_utils import TrainOutput

        log.info("training had finished at %s; writing the %s from it", resume, trained_dir(cfg).name)
        _load_checkpoint_weights(trainer.model, Path(resume))
        losses = [h["loss"] for h in finished["log_history"] if "loss" in h]
        result = TrainOutput(finished["global_step"], sum(losses) / len(losses) if losses else None,
                             {"resumed_finished_checkpoint": resume})
    else:
        if resume:
            log.info("resuming from %s", resume)
        with attention_kernels(cudnn_in_training(cfg)), _graphs_named_on_failure(cfg):
            result = trainer.train(resume_from_checkpoint=resume)
    return cleanup(cfg, trainer, tokenizer, result)


@contextlib.contextmanager
def _graphs_named_on_failure(cfg: Config):
    """A failure inside the CUDA graphs (torch_compile_mode reduce-overhead, the default on a GPU outside FSDP and
    DeepSpeed) said plainly, with the way around it: PyTorch's own message names neither the setting nor the fix. The
    checkpoints stay; run again, it resumes from the last one written."""
    try:
        yield
    except RuntimeError as e:
        if "CUDAGraph" not in str(e) or not use_compile(cfg) or compile_mode(cfg) != "reduce-overhead":
            raise
        raise GemsqlError(f"training stopped inside the compiled layers' CUDA graphs ({str(e).splitlines()[0]}): set "
                          "torch_compile_mode: default (--torch_compile_mode default) to launch their kernels one by "
                          "one; run again, it resumes from the last checkpoint written",
                          field="torch_compile_mode") from e


def _load_checkpoint_weights(model, checkpoint: Path) -> None:
    """The trained weights of a checkpoint into the model: the adapter's, or under full fine-tuning every weight."""
    from safetensors.torch import load_file

    if (checkpoint / "adapter_model.safetensors").is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))
        return
    state: dict = {}
    for shard in sorted(checkpoint.glob("model*.safetensors")):
        state.update(load_file(str(shard)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # a tied output head is saved once, as the embedding
    tied = {"lm_head.weight"} if model.config.get_text_config().tie_word_embeddings else set()
    if not state or unexpected or set(missing) - tied:
        raise GemsqlError(f"the checkpoint's weights do not fit the model (missing {sorted(set(missing) - tied)[:5]}, "
                          f"unexpected {sorted(unexpected)[:5]})", file=str(checkpoint))
    model.tie_weights()


def _finished_state(cfg: Config, checkpoint: str) -> dict | None:
    """The trainer state of a checkpoint written at the last step this config asks for, else None."""
    import json

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    if cfg.train.max_steps > 0:
        target = cfg.train.max_steps
    elif state.get("num_train_epochs") == cfg.train.num_train_epochs:
        target = state.get("max_steps", 0)
    else:
        return None  # asked for another number of epochs: let the trainer work out what is left
    return state if target > 0 and state.get("global_step", 0) >= target else None


def cleanup(cfg: Config, trainer, tokenizer, result) -> TrainResult:
    """Write the adapter (or whole-model) folder whole (rank 0 only; every rank takes part in gathering sharded
    weights)."""
    from gemsql.files import publish_dir, recover

    out = trained_dir(cfg)
    staging = out.with_name(f".{out.name}.staging.tmp")  # one name all ranks agree on
    if is_main():
        recover(out)  # also clears a staging folder a killed run left
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")  # whole adapter on rank 0
    wait_for_everyone()
    trainer.save_model(str(staging))  # the Trainer gathers what FSDP sharded and writes on rank 0 only
    if is_main():
        tokenizer.save_pretrained(staging)
        cfg.save(staging / CONFIG_NAME)
        write_json(staging / "train_metrics.json",
                   {**result.metrics, "global_step": result.global_step, "as_run": as_run(cfg)})
        publish_dir(staging, out)
        log.info("%s saved to %s", out.name, out)
    wait_for_everyone()
    if cfg.train.push_to_hub:
        trainer.push_to_hub()
    return TrainResult(out, result.training_loss, result.global_step, result.metrics)
