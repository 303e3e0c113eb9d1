"""Finding, loading and checking the model and tokenizer.

`resolve_model` turns a name into something `from_pretrained` takes: the embedded Gemma 3 270M is
converted once from its GGUF into a cached bf16 safetensors folder; Hub ids and local folders pass
through. `load_tokenizer` attaches Gemma 3's chat template where a base checkpoint has none and
checks that tokenization is sane, since a wrong tokenizer trains a useless model without any error.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from gemsql.config import EMBEDDED_MODEL, ModelConfig
from gemsql.errors import GemsqlError

# Stop strings Gemma 3 uses: <eos> ends a document, <end_of_turn> ends a chat turn.
STOP_TOKENS = ("<eos>", "<end_of_turn>")
TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")
PROBE_SQL = "SELECT department, AVG(salary) FROM employees WHERE hire_year > 2015 GROUP BY department ORDER BY 2 DESC;"


def cache_dir() -> Path:
    """Where converted models live: $GEMSQL_CACHE, else ~/.cache/gemsql."""
    return Path(os.environ.get("GEMSQL_CACHE") or Path.home() / ".cache" / "gemsql")


def resolve_model(name_or_path: str) -> str:
    """A path or Hub id that `from_pretrained` can load."""
    if name_or_path == EMBEDDED_MODEL:
        from gemsql.model.embedded import embedded_model_dir

        return str(embedded_model_dir(cache_dir()))
    if Path(name_or_path).exists():
        if not (Path(name_or_path) / "config.json").is_file():
            raise GemsqlError("not a Hugging Face model folder (no config.json)", file=name_or_path)
        return name_or_path
    if name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1:
        raise GemsqlError("model folder not found", file=name_or_path)
    return name_or_path  # a Hub id (namespace/name); loading says clearly if it cannot be fetched


def load_error(name: str, e: Exception) -> GemsqlError:
    return GemsqlError(
        f"cannot load model '{name}': {type(e).__name__}: {e}. Offline, use model_name_or_path: "
        f"{EMBEDDED_MODEL} or a local model folder."
    )


def compute_dtype(cfg: ModelConfig) -> torch.dtype:
    """The tutorial's rule: bf16 on compute capability >= 8.0, else fp16; the CPU gets bf16 (AMX/AVX-512 run it)."""
    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float16
    return torch.bfloat16


def load_tokenizer(cfg: ModelConfig, path: str | None = None):
    from transformers import AutoTokenizer
    from trl.chat_template_utils import gemma3_chat_template

    path = path or resolve_model(cfg.model_name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise load_error(cfg.model_name_or_path, e) from None
    if not tok.chat_template:
        # Gemma 3 base (-pt) checkpoints ship no chat template; the tutorial takes the -it one, which TRL ships.
        tok.chat_template = gemma3_chat_template
    check_tokenizer(tok, source=path)
    return tok


def check_tokenizer(tok, source: str = "tokenizer") -> None:
    """Fail early on a tokenizer that would silently ruin training (seen: transformers 5.17 on this GGUF)."""
    ids = tok(PROBE_SQL).input_ids
    if tok.bos_token_id is None or not ids or ids[0] != tok.bos_token_id:
        raise GemsqlError("tokenizer does not start sequences with a BOS token; is transformers >= 5.24?", file=source)
    chars_per_token = len(PROBE_SQL) / (len(ids) - 1)
    if chars_per_token < 3.0:
        raise GemsqlError(
            f"tokenizer splits SQL into {len(ids) - 1} tokens ({chars_per_token:.1f} characters per token, "
            "expected >= 3): the vocabulary was built wrong; is transformers >= 5.24?",
            file=source,
        )
    missing = [t for t in TURN_TOKENS if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id)]
    if missing:
        raise GemsqlError(f"tokenizer lacks Gemma 3's chat tokens {missing}", file=source)


def stop_token_ids(tok) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in STOP_TOKENS]


def model_class(path: str):
    """Gemma 3 270M/1B are text-only causal LMs; 4B and larger are image-text checkpoints (trained here on text)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise load_error(path, e) from None
    return AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM


# Measured on an H200 (docs/benchmarks.md): with cuDNN, training ran 1.7x (270M) and 2.2x (4B) faster at 16 x 512
# tokens per micro-batch and 0.88x at 4 x 512; decoding ran 2.9x slower (a new plan for every cache length).
CUDNN_TRAINING_TOKENS = 8192


def cudnn_allowed(setting: bool | None, *, decoding: bool, micro_batch_tokens: int = 0) -> bool:
    """ModelConfig.cudnn_attention resolved for one use: an explicit true/false stands; None (auto) allows cuDNN in
    training from CUDNN_TRAINING_TOKENS tokens per micro-batch and never in decoding."""
    if setting is not None:
        return setting
    return not decoding and micro_batch_tokens >= CUDNN_TRAINING_TOKENS


def attention_kernels(cudnn: bool):
    """A context in which SDPA may use cuDNN's attention kernels (PyTorch's own choice) or, with `cudnn` false,
    only FlashAttention, the memory-efficient kernel and plain math: see ModelConfig.cudnn_attention."""
    if cudnn:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def decoder_layers(model) -> list:
    """The model's repeated layers, in module order: those of the classes it names as not to be split across devices
    (`_no_split_modules`: Gemma 3's decoder layers, and an image-text model's vision encoder layers), found through a
    PEFT wrapper and FSDP2's sharding too (it makes each sharded layer an instance of a subclass, FSDP<name>)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    return [m for m in model.modules() if any(c.__name__ in names for c in type(m).__mro__)]


def compile_layers(model, recompute: str | None = None, mode: str = "default") -> int:
    """Compile each decoder layer in place with torch.compile (regional compilation), before it first runs; returns
    how many. With `recompute` ("full", "selective" or "lean", TrainConfig.recompute), each layer's forward runs under
    activation checkpointing inside its compiled region; `mode` is torch.compile's (TrainConfig.torch_compile_mode).

    The layers share one code path, so one compile (and, without recompute, one recompile when a second sequence
    length marks the shapes dynamic) serves them all: on the CPU the tiny test model compiled in 15 s a compile this
    way against 74 s whole.
    In place (`Module.compile`), the layer keeps its hooks, which FSDP2 gathers its shards in. Only the layers: the
    embedding and the fused loss head run once a forward, and the training framework's code stays uncompiled.

    Recompute goes inside the compiled region, where torch.compile plans it (PyTorch's supported order, issue
    pytorch/pytorch#143176), with each op marked by a policy (`_recomputed`). transformers' checkpointing around the
    compiled call, and checkpoint's own marking inside it, both left the 270M on the H200 with every layer's 4-bit
    matmul outputs kept to the backward, 1.9 of its 3.85 GiB peak at 16 x 512 tokens (bench/memory_peak.py,
    docs/benchmarks.md)."""
    layers = decoder_layers(model)
    for layer in layers:
        if recompute:
            layer.forward = _recomputed(layer.forward, recompute)
        # With recompute, each new shape gets a graph of its own (dynamic=False): on the H200 (PyTorch 2.11) the
        # dynamic-shape recompile that the built-in set's last, shorter micro-batch set off failed in the
        # partitioner ("Node add_803 was invalid, but is output"). Packed rows padded to 128 give few shapes.
        layer.compile(dynamic=False if recompute else None, mode=mode)
    return len(layers)


def copy_grads_out_of_graphs(model) -> int:
    """Make each trainable weight's gradient a tensor of its own as it lands, instead of the CUDA graphs' output
    buffer; returns how many weights. For gradient accumulation with compiled layers replayed as CUDA graphs
    (reduce-overhead).

    Autograd takes a backward's gradient output as the weight's .grad where none is there yet; replayed as a CUDA
    graph, that output lives in the graphs' memory pool, and the next micro-batch's replay writes over it before the
    gradient is added to it. On the H200 (PyTorch 2.11) the 270M's one-GPU run accumulating two micro-batches a step
    stopped in its first step with "accessing tensor output of CUDAGraphs that has been overwritten by a subsequent
    run" (docs/benchmarks.md, eighteenth session); upstream this is pytorch/pytorch#169545. A copy a weight a
    micro-batch costs little: the adapter's weights are a few percent of the model's."""
    weights = [p for p in model.parameters() if p.requires_grad]
    for w in weights:
        w.register_post_accumulate_grad_hook(_own_grad)
    return len(weights)


def _own_grad(weight: torch.Tensor) -> None:
    weight.grad = weight.grad.clone()


def _recomputed(forward, mode: str = "full"):
    """`forward` under non-reentrant activation checkpointing, every op marked by a selective-checkpoint policy:
    "full" recomputes them all, so that what the layer keeps for the backward is little more than its inputs;
    "selective" keeps the attention's output and every other 4-bit matmul's output (`_keep_some`); "lean" keeps the
    attention's output and the narrow ones of those (q, v and down: `LEAN`).

    The policy marks each op explicitly rather than leaving it to checkpoint's own marking: on the H200 (PyTorch
    2.11) that marking missed the ops inside bitsandbytes' 4-bit matmul (an autograd.Function), so the partitioner
    kept all seven matmul outputs of every layer, 1.93 of the 270M's 3.85 GiB peak at 16 x 512; marked by the policy
    they are recomputed: 1.95 GiB, at 0.72x the tokens/s of no recompute over 200,000 tokens (docs/benchmarks.md,
    fifteenth session). The recompute reuses the forward's dropout masks (the compiled graphs share their RNG state:
    bench/recompute_check.py)."""

    # A module-level function for each mode, not a closure over `mode`: TorchDynamo calls context_fn without tracing
    # it, so it guards on the function's code alone, and a second model compiled in the same process with the other
    # mode ran the first one's graphs (what it kept, counted by bench/saved_activations.py, was the first mode's).
    contexts = {"full": _full_contexts, "selective": _selective_contexts, "lean": _lean_contexts}[mode]

    # plain functions, not functools.partial: TorchDynamo traced no frame at all through a partial of checkpoint
    def forward_recomputed(*args, **kwargs):
        return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts, **kwargs)

    return forward_recomputed


def _full_contexts():
    return create_selective_checkpoint_contexts(_recompute_every_op)


def _selective_contexts():
    return create_selective_checkpoint_contexts(_keep_some(SELECTIVE))


def _lean_contexts():
    return create_selective_checkpoint_contexts(_keep_some(LEAN))


def _recompute_every_op(ctx, op, *args, **kwargs):
    return CheckpointPolicy.MUST_RECOMPUTE


# Attention kernels whose outputs "selective" keeps: recomputing attention would run it a third time a step.
_ATTENTION_OPS = tuple(getattr(torch.ops.aten, name).default for name in (
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu",
    "_flash_attention_forward", "_efficient_attention_forward", "_cudnn_attention_forward")
    if hasattr(torch.ops.aten, name))


# Which of a decoder layer's seven 4-bit matmuls keep their outputs, by position in Gemma 3's order (q, k, v, o,
# gate, up, down), counted from 1. SELECTIVE: every other one, torchtitan's choice. LEAN: SELECTIVE without gate,
# whose output is as wide as the MLP (10,240 on the 4B, four times the hidden size): a layer then keeps about 40 % of
# SELECTIVE's bytes a token (the 4B: 7,680 values against 17,920, counting the attention's output) for one more
# recomputed matmul of the seven, over a quarter of the layer's matmul work (the 4B: 26 of 94 M multiply-adds a token).
# On the H200 at 16 x 512 the 4B's kept matmul outputs at its peak: 4.21 GiB against 9.52 (peak 13.86 against 19.18) at
# 0.97x the tokens/s; LEAN is what recompute does by default (gemsql.train.recompute_mode).
SELECTIVE = frozenset({1, 3, 5, 7})
LEAN = frozenset({1, 3, 7})
# the recompute modes whose policy keeps some 4-bit matmuls' outputs: they need 4-bit layers, compiled
PARTIAL_RECOMPUTE = ("selective", "lean")


def _keep_some(keep: frozenset[int]):
    """One layer call's policy for "selective" and "lean": torchtitan's op-level selective checkpointing, with
    bitsandbytes' 4-bit matmuls as the matmuls (the base layer's; LoRA's own are cheap to recompute): keep the
    outputs of the attention and of the layer's 4-bit matmuls at the positions in `keep`, recompute everything else.
    The forward's and the recompute's counts are kept apart, so that an eager recompute (a shape past the recompile
    limit) marks the same ops as its forward did."""
    try:
        gemm_4bit = torch.ops.bitsandbytes.gemm_4bit.default  # registered when bitsandbytes is imported
    except AttributeError:
        gemm_4bit = None
    matmuls = {False: 0, True: 0}

    def policy(ctx, op, *args, **kwargs):
        if op in _ATTENTION_OPS:
            return CheckpointPolicy.MUST_SAVE
        if op == gemm_4bit:
            matmuls[ctx.is_recompute] += 1
            return CheckpointPolicy.MUST_SAVE if matmuls[ctx.is_recompute] in keep else CheckpointPolicy.MUST_RECOMPUTE
        return CheckpointPolicy.MUST_RECOMPUTE

    return policy


def engine_places_weights() -> bool:
    """Launched by accelerate with DeepSpeed or FSDP1: the engine, not gemsql, places the weights. Under FSDP2
    (configs/accelerate/fsdp2_qlora.yaml) each process quantizes the model on its own GPU and gemsql shards it there
    (gemsql.distributed.shard_fsdp2)."""
    from gemsql.distributed import fsdp2_launch, sharded_launch

    return sharded_launch() and not fsdp2_launch()


def load_model(cfg: ModelConfig, *, quantize: bool | None = None, path: str | None = None,
               weights_dtype: torch.dtype | None = None):
    """The base model as the config asks: 4-bit (QLoRA) or full precision, in the compute dtype (or weights_dtype for
    the weights of a full-precision model)."""
    path = path or resolve_model(cfg.model_name_or_path)
    dtype = compute_dtype(cfg)
    kwargs: dict = {"dtype": weights_dtype or dtype, "attn_implementation": "sdpa" if cfg.attn_implementation == "auto" else cfg.attn_implementation}
    if quantize if quantize is not None else cfg.quantization == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=dtype,
            # Storage dtype = compute dtype lets FSDP shard the 4-bit weights like the rest.
            bnb_4bit_quant_storage=dtype,
        )
        if torch.cuda.is_available() and not engine_places_weights():
            # Each data-parallel (or FSDP2) process quantizes its copy on its own GPU; under FSDP1 or ZeRO-3 the
            # engine places the shards.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))}
    try:
        return model_class(path).from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise load_error(cfg.model_name_or_path, e) from None
