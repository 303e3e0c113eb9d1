"""Training throughput: the tutorial's recipe against gemsql's default, same rows, same token budget.

Per config it reports trained tokens/s (real tokens, no padding, after warm-up steps), peak GPU
memory, the held-out loss on SQL answer tokens after the same number of trained tokens, the
adapter's size, and MFU.

MFU counts the matmul FLOPs a LoRA step does per trained token, without activation recompute:
forward 2*N and backward 2*N for the input gradients of the frozen weights (no weight gradients),
where N counts every linear weight including the 262k-vocab output head, plus LoRA's own (6*N_lora)
and attention scores (12 * layers * heads * head_dim * effective context per token, forward and
backward), over the H200's dense bf16 peak (989 TFLOP/s datasheet). Recompute (gradient
checkpointing) is extra work that does not count.

    python bench/train_throughput.py --model gemma-3-270m --configs tutorial gemsql --tokens 200000
    python bench/train_throughput.py --model gemma-3-4b-random --configs gemsql --tokens 100000
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import torch

from gemsql.config import load_config
from gemsql.data import prepare
from gemsql.files import read_jsonl
from gemsql.model import attention_kernels
from gemsql.data.prompt import user_message
from gemsql.train import compile_mode, cudnn_in_training, recompute_mode, setup, use_compile
import memory_peak
from results_file import record

PEAK_TFLOPS = 989.0

# Gemma 3 text architectures from Google's published configurations (random weights: speed needs none).
ARCHS = {
    "gemma-3-1b-random": dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                              num_key_value_heads=1, head_dim=256, sliding_window=512, vocab_size=262144),
    "gemma-3-4b-random": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
                              num_key_value_heads=4, head_dim=256, sliding_window=1024, vocab_size=262208),
    "gemma-3-12b-random": dict(hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
                               num_key_value_heads=8, head_dim=256, sliding_window=1024, vocab_size=262208),
}

# The tutorial's recipe as written, then gemsql's levers added one at a time; "gemsql" is the shipped default.
TUTORIAL = dict(attn_implementation="eager", packing=True, packing_strategy="wrapped", padding_free=False,
                per_device_train_batch_size=1, gradient_accumulation_steps=4, gradient_checkpointing=True,
                learning_rate=2e-4, stop_token_training="full_embeddings", assistant_only_loss=False,
                use_liger_kernel=False, torch_compile=False)
LADDER = [
    ("+sdpa", dict(attn_implementation="sdpa")),
    ("+bfd_padding_free", dict(packing_strategy="bfd")),
    ("+turn_tokens_answer_loss", dict(stop_token_training="turn_tokens", assistant_only_loss=True)),
    ("+no_recompute", dict(gradient_checkpointing=False)),
    ("+microbatch_4x1", dict(per_device_train_batch_size=4, gradient_accumulation_steps=1)),
    ("+liger", dict(use_liger_kernel=True)),
]
# gemsql's default until the twelfth session (4 x 512 at the tutorial's learning rate, layers not compiled): the base
# of the lever rows below, so that a row's name keeps the meaning of the records measured under it.
GEMSQL_4X512 = dict(per_device_train_batch_size=4, learning_rate=2e-4, torch_compile=False,
                    gradient_checkpointing=False)
# Levers on top of it, measured one at a time: larger micro-batches (a token budget per step; the learning rate scaled
# by the square root of the batch for the "_lr" rows), torch.compile, LoRA instead of QLoRA, batch lengths padded to a
# multiple of 128 (fewer shapes for cuDNN's per-shape attention setup) or not.
LEVERS = {
    "gemsql_mb1x4": dict(per_device_train_batch_size=1, gradient_accumulation_steps=4),
    "gemsql_mb8x1": dict(per_device_train_batch_size=8),
    "gemsql_mb16x1": dict(per_device_train_batch_size=16),
    "gemsql_mb32x1": dict(per_device_train_batch_size=32),  # the 4B's MFU at twice the tokens per kernel
    "gemsql_mb16x1_lr4e-4": dict(per_device_train_batch_size=16, learning_rate=4e-4),
    # torch.compile of each decoder layer (Liger's layer kernels then off by default; "_liger" forces them on)
    "gemsql_compile": dict(torch_compile=True),
    "gemsql_compile_liger": dict(torch_compile=True, use_liger_kernel=True),
    "gemsql_mb16x1_compile": dict(per_device_train_batch_size=16, torch_compile=True),
    "gemsql_mb32x1_compile": dict(per_device_train_batch_size=32, torch_compile=True),
    "gemsql_mb16x1_lr4e-4_compile": dict(per_device_train_batch_size=16, learning_rate=4e-4, torch_compile=True),
    # packed sequences flattened into one row per micro-batch (TRL's layout; gemsql's before packed_rows)
    "gemsql_flat": dict(packed_rows=False),
    "gemsql_compile_flat": dict(torch_compile=True, packed_rows=False),
    "gemsql_mb16x1_compile_flat": dict(per_device_train_batch_size=16, torch_compile=True, packed_rows=False),
    "gemsql_lora_bf16": dict(quantization="none"),
    "gemsql_pad128": dict(pad_to_multiple_of=128),  # the default on a GPU since the fourth session
    "gemsql_nopad": dict(pad_to_multiple_of=1),  # the default before it
    # cuDNN's attention: auto (the default since the fifth session) uses it from 8,192 tokens per micro-batch, so
    # "gemsql_4x512" trains without it and the mb16 rows with it; the rows below force one way
    "gemsql_cudnn": dict(cudnn_attention=True),  # "gemsql" as measured before the fifth session
    "gemsql_no_cudnn": dict(cudnn_attention=False),  # FlashAttention / memory-efficient SDPA instead of cuDNN's
    "gemsql_nopad_no_cudnn": dict(pad_to_multiple_of=1, cudnn_attention=False),
    "gemsql_mb16x1_lr4e-4_no_cudnn": dict(per_device_train_batch_size=16, learning_rate=4e-4, cudnn_attention=False),
    "gemsql_mb16x1_no_cudnn": dict(per_device_train_batch_size=16, cudnn_attention=False),
    "gemsql_mb16x1_lr4e-4_pad128": dict(per_device_train_batch_size=16, learning_rate=4e-4, pad_to_multiple_of=128),
}
CONFIGS = {
    "tutorial": TUTORIAL,
    # the tutorial's recipe at the default's tokens per micro-batch (16 x 512): the peak-memory comparison
    "tutorial_mb16x1": {**TUTORIAL, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 1},
    "tutorial_mb32x1": {**TUTORIAL, "per_device_train_batch_size": 32, "gradient_accumulation_steps": 1},  # and 32 x 512
    # as shipped: 16 x 512, lr 4e-4, compiled layers recomputing leanly (selectively until the twenty-first session:
    # "gemsql_recompute_selective" now), as CUDA graphs on a GPU
    "gemsql": {},
    # the shipped default until the nineteenth session: the compiled layers' kernels launched one by one
    # (torch.compile's default mode) instead of replayed as CUDA graphs
    "gemsql_no_graphs": dict(torch_compile_mode="default"),
    # each compiled layer replayed as CUDA graphs (torch_compile_mode reduce-overhead): fewer launches for a step bound
    # by the CPU that launches its kernels. Named since the seventeenth session, when they stopped for both models (why
    # is not settled: docs/benchmarks.md, nineteenth session); the default since the nineteenth, when they trained (so
    # these two and "gemsql", "gemsql_32x512" now ask for the same on a GPU)
    "gemsql_cudagraphs": dict(torch_compile_mode="reduce-overhead"),
    "gemsql_32x512_cudagraphs": dict(per_device_train_batch_size=32, torch_compile_mode="reduce-overhead"),
    "gemsql_no_recompute_cudagraphs": dict(gradient_checkpointing=False, torch_compile_mode="reduce-overhead"),
    # and at 32 x 512: the 4B's MFU with CUDA graphs and twice the tokens per kernel (34.9 percent at 16 x 512,
    # eighteenth session; 38.2 at 32 x 512 without recompute or graphs, twelfth)
    "gemsql_32x512_no_recompute_cudagraphs": dict(per_device_train_batch_size=32, gradient_checkpointing=False,
                                                  torch_compile_mode="reduce-overhead"),
    # the shipped default until the sixteenth session: the same without recompute (every activation kept; since the
    # nineteenth, CUDA graphs on a GPU as in "gemsql_no_recompute_cudagraphs")
    "gemsql_no_recompute": dict(gradient_checkpointing=False),
    "gemsql_eager": dict(torch_compile=False),
    # the default with every op recomputed: the tutorial's recipe at 16 x 512 peaked at 3.76 GiB, the default without
    # recompute at 7.28 (twelfth session), most of it the activations of 8,192 tokens kept for the backward
    "gemsql_recompute": dict(gradient_checkpointing=True, recompute="full"),
    # recompute that keeps the attention's output and every other 4-bit matmul's output (fewer matmuls run twice);
    # the shipped default from the sixteenth to the twenty-first session (as CUDA graphs on a GPU since the nineteenth)
    "gemsql_recompute_selective": dict(gradient_checkpointing=True, recompute="selective"),
    # selective without the MLP's gate projection's output (recompute lean), replayed as CUDA graphs as the default
    # is: the 4B as shipped peaked at 19.18 GiB against the tutorial's 16.11 at 16 x 512, 9.7 GiB of it what selective
    # keeps over full recompute, over half of that the gate's output (twenty-first session). The default since the
    # twenty-second session (so "gemsql" asks for the same on a GPU)
    "gemsql_lean": dict(gradient_checkpointing=True, recompute="lean", torch_compile_mode="reduce-overhead"),
    # the turn tokens' two head rows trained as hidden-state columns against a frozen head (turn_rows_as_columns):
    # TRL's loss then computes no vocabulary-wide weight gradient (3.85 GiB of the 4B's peak as shipped, twenty-second
    # session; without the rows the 270M trained 1.19x faster, thirteenth). On the H200 (twenty-third): peak 2.46
    # against 2.95 GiB on the 270M, 12.37 against 13.86 on the 4B, at the same tokens/s; the 4B's peak moves to a CUDA
    # graph's recording (traced, twenty-fourth: docs/benchmarks/memory_4b_gemsql_turn_columns.txt)
    "gemsql_turn_columns": dict(turn_rows_as_columns=True),
    # AdamW as torch runs it unless told (foreach kernels over the adapter's tensors) instead of the fused kernel that
    # the tutorial's recipe and gemsql's default use: the fused optimizer measured as a lever of its own. On the H200
    # (twenty-fourth session) fused was 1.01x on the 4B and 0.97x to 1.15x on the 270M (1.03x on four pairs' mean)
    "gemsql_adamw_unfused": dict(optim="adamw_torch"),
    # without LoRA dropout (the tutorial's 0.05): PEFT then keeps no dropped-out copy of each adapted layer's input
    # for the backward, seven a decoder layer
    "gemsql_no_dropout": dict(lora_dropout=0.0, gradient_checkpointing=False),
    # as shipped (partial recompute on a GPU: selective until the twenty-first session) without LoRA dropout: a
    # quarter of the 4B's GPU time as shipped is Inductor's fused element-wise kernels, the dropout of the seven
    # adapted inputs among them (seventeenth session)
    "gemsql_shipped_no_dropout": dict(lora_dropout=0.0),
    # without training the turn tokens' embedding rows (stop_token_training: none): PEFT's trainable tokens build a
    # full copy of the tied embedding matrix each forward, and its gradient is full size (thirteenth session)
    "gemsql_recompute_no_turn_tokens": dict(gradient_checkpointing=True, recompute="full",
                                            stop_token_training="none"),
    "gemsql_no_turn_tokens": dict(stop_token_training="none", gradient_checkpointing=False),
    # and as shipped without them: PEFT's layer also moves its index list to the GPU on each read of the weight (4 of
    # the 4B's 21.3 host syncs a step, eighteenth session), which CUDA graphs of the layers alone do not remove
    "gemsql_shipped_no_turn_tokens": dict(stop_token_training="none"),
    # the default at the tutorial's own tokens per micro-batch (1 x 512, 4 a step): the memory target's other reading,
    # against the tutorial as written (3.94 GiB, thirteenth session)
    "gemsql_1x512": dict(per_device_train_batch_size=1, gradient_accumulation_steps=4, gradient_checkpointing=False),
    # the default at 32 x 512: the 4B's MFU with twice the tokens per kernel, in the room recompute leaves; the 270M's
    # tokens/s with half the micro-batches for the same tokens (its step is bound by the CPU that launches it)
    "gemsql_32x512": dict(per_device_train_batch_size=32),
    "gemsql_4x512": GEMSQL_4X512,
    **{name: {**GEMSQL_4X512, **lever} for name, lever in LEVERS.items()},
}
_acc = dict(TUTORIAL)
for _name, _lever in LADDER:
    _acc = {**_acc, **_lever}
    CONFIGS[_name] = dict(_acc)


def build_random(name: str, out: Path, tokenizer_dir: str) -> str:
    """Save a random-init Gemma 3 text model of a published size (so 4-bit loading works as for real weights), or
    reuse the one a run with the same --work saved (the 4B's 8 GB take a minute to write)."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    if (out / "built.json").is_file() and json.loads((out / "built.json").read_text()) == ARCHS[name]:
        return str(out)

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    arch = dict(ARCHS[name])
    layers = arch["num_hidden_layers"]
    config = Gemma3TextConfig(
        **arch, layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)],
        query_pre_attn_scalar=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Gemma3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "built.json").write_text(json.dumps(ARCHS[name]))  # last: written only once the model is whole
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return str(out)


def flops_per_token(model_config, n_lora: int, context: float) -> float:
    c = model_config
    h, i, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i
    n = layers * per_layer + h * c.vocab_size  # linear weights + output head
    attention = 12 * layers * c.num_attention_heads * c.head_dim * context
    return 4 * n + 6 * n_lora + attention


@torch.inference_mode()
def answer_loss(model, tokenizer, rows: list[dict], batch_size: int = 16) -> float:
    """Mean NLL over SQL answer tokens (and the closing <end_of_turn>) of held-out rows."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        seqs, labels = [], []
        for r in batch:
            prompt = tokenizer.apply_chat_template([user_message(r["question"], r["context"])], tokenize=False,
                                                   add_generation_prompt=True)
            p = tokenizer(prompt, add_special_tokens=False).input_ids
            a = tokenizer(r["sql"] + "<end_of_turn>", add_special_tokens=False).input_ids
            seqs.append(p + a)
            labels.append([-100] * len(p) + a)
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
        lab = torch.full((len(seqs), width), -100)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for k, (s, l) in enumerate(zip(seqs, labels)):
            ids[k, : len(s)], lab[k, : len(l)], mask[k, : len(s)] = torch.tensor(s), torch.tensor(l), 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        lp = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), lab[:, 1:].to(device), reduction="sum",
                                               ignore_index=-100)
        total += lp.item()
        count += int((lab[:, 1:] != -100).sum())
    return total / count


def kernel_time(events) -> float:
    """Microseconds the GPU spent in kernels, as the profiler's own "Self CUDA time total" counts them: device
    events only, without the step markers' GPU-side ranges (user annotations), which span whole steps."""
    return sum(e.self_device_time_total for e in events
               if e.device_type.name in ("CUDA", "XPU", "MTIA", "PrivateUse1") and not e.is_user_annotation)


def profiler_callback(warmup: int, steps: int, out: Path):
    """Profile `steps` optimizer steps after the warm-up and write what bounds them: wall time per step, the
    share of it the GPU spends in kernels, and the top operators by GPU and by CPU time."""
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])

    class Profile(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            # One cycle only, its events kept when it ends: a repeating schedule starts a new cycle after the
            # window and clears the events, so reading them at the end of training saw whichever cycle was under
            # way then (an empty one for the 4B's 17 steps on the H200; another window's steps for the 270M).
            self.window = None
            self.prof = profile(activities=activities, on_trace_ready=self.keep,
                                schedule=schedule(wait=warmup, warmup=1, active=steps, repeat=1))
            self.prof.start()
            self.marks: list[float] = []

        def keep(self, prof):
            self.window = prof.key_averages()
            # Ranks summarize their windows at different speeds (seconds apart for the 4B on two H200s); without
            # waiting here, the first timed step of the quicker rank took in its wait for the other at the first
            # collective, and the two-GPU figure came out low
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()

        def on_step_end(self, args, state, control, **kw):
            self.marks.append(time.perf_counter())
            self.prof.step()

        def on_train_end(self, args, state, control, **kw):
            self.prof.stop()
            active = self.marks[warmup : warmup + 1 + steps]  # the ends of the steps before and in the window
            if len(active) < 2 or self.window is None:
                return
            wall_us = (active[-1] - active[0]) * 1e6 / (len(active) - 1)
            events = self.window
            gpu_us = kernel_time(events) / steps
            lines = [f"wall per step: {wall_us / 1e3:.1f} ms (profiled steps run slower); GPU kernels per step: "
                     f"{gpu_us / 1e3:.1f} ms ({100 * gpu_us / wall_us:.0f}% busy)", ""]
            if torch.cuda.is_available():
                lines += ["top by GPU time:", events.table(sort_by="self_cuda_time_total", row_limit=20), ""]
            lines += ["top by CPU time:", events.table(sort_by="self_cpu_time_total", row_limit=20)]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines))
            print(lines[0], flush=True)

    return Profile()


def token_clock(marks: list[tuple[float, int]], tokens: int, warmup: int, min_timed: int = 2):
    """A callback appending (time, tokens trained so far) to `marks` after every optimizer step, and ending training
    once `tokens` are trained with at least `min_timed` steps timed after the `warmup` ones (the GPU synchronised
    first, so a mark is when the step's work is done). Under a launcher the token count is the sum over all
    processes."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), state.num_input_tokens_seen))
            if state.num_input_tokens_seen >= tokens and len(marks) >= warmup + min_timed:
                control.should_training_stop = True

    return Clock()


def step_seconds(marks: list[tuple[float, int]], warmup: int) -> dict:
    """The timed steps' durations (after the `warmup` ones): median and slowest, so that one slow step (a graph
    compiled or recorded inside the window, say) shows in a record instead of only lowering its tokens/s."""
    times = [b[0] - a[0] for a, b in zip(marks[warmup - 1:], marks[warmup:])]
    return {"median": round(statistics.median(times), 4), "max": round(max(times), 4), "timed": len(times)}


def failure(e: Exception, limit: int) -> str:
    """What a record keeps of a failure (the first `limit` characters); the whole stack goes to the log."""
    traceback.print_exception(e)
    return f"{type(e).__name__}: {e}"[:limit]


def bench_one(model_path: str, name: str, overrides: dict, data_run: Path, work: Path, tokens: int, warmup: int,
              eval_rows: int, base: dict, profile: Path | None = None, memory: Path | None = None,
              syncs: Path | None = None) -> dict:
    run_dir = work / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    shutil.copytree(data_run / "data", run_dir / "data")
    values = {**base, **overrides, "model_name_or_path": model_path, "output_dir": str(run_dir)}
    t = load_config(None, **values).train  # the defaults fill in what neither the config nor --set gives
    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * t.max_length
    planned = max(warmup + 2, math.ceil(tokens / per_step))
    # Every config stops at the same number of trained tokens (packs are not always full, so steps vary); the
    # warm-up is fixed in steps so that the step cap does not change the learning-rate schedule.
    values["warmup_steps"] = max(1, round(0.03 * planned))
    values["max_steps"] = 4 * planned
    cfg = load_config(None, **values)
    trainer, tokenizer = setup(cfg)

    marks: list[tuple[float, int]] = []
    trainer.add_callback(token_clock(marks, tokens, warmup))
    if profile is not None:
        trainer.add_callback(profiler_callback(warmup, 3, profile / f"profile_{name}.txt"))
    if syncs is not None:
        from host_syncs import sync_callback

        trainer.add_callback(sync_callback(warmup, 3, syncs / f"syncs_{name}.txt"))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    traced = memory_peak.traced(memory / f"memory_{name}.txt") if memory is not None else nullcontext()
    with attention_kernels(cudnn_in_training(cfg)), traced:  # as gemsql.train.train does
        trainer.train()
    # no GPU, no peak: null in the records (NaN is not JSON: strict readers refuse the whole file)
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    (t0, n0), (t1, n1) = marks[warmup - 1], marks[-1]
    tokens_per_s = (n1 - n0) / (t1 - t0)
    adapter = run_dir / "adapter_bench"
    trainer.model.save_pretrained(adapter)
    adapter_mb = sum(p.stat().st_size for p in adapter.glob("*.safetensors")) / 2**20
    n_lora = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" in n)
    test = read_jsonl(run_dir / "data" / "test.jsonl")[:eval_rows]
    try:
        # the model's loss, not its compiled speed: the layers run eagerly (eval batches of many lengths would each
        # compile a graph of their own, past the recompile limit, and CUDA graphs are made for training's fwd/bwd)
        with torch.compiler.set_stance("force_eager"):
            loss, loss_error = answer_loss(trainer.model, tokenizer, test), None
    except Exception as e:  # measured after the timing: a failure here must not lose the tokens/s and memory
        loss, loss_error = None, failure(e, 300)
    mean_context = t.max_length / 2  # causal attention over packed sequences of max_length
    fpt = flops_per_token(trainer.model.get_base_model().config.get_text_config(), n_lora, mean_context)
    result = {
        "model": None, "config": name, "tokens_per_s": round(tokens_per_s, 1), "peak_gib": peak,
        "mfu": round(tokens_per_s * fpt / (PEAK_TFLOPS * 1e12), 4), "loss": None if loss is None else round(loss, 4),
        "adapter_mb": round(adapter_mb, 2), "trained_tokens": int(marks[-1][1]), "steps": len(marks),
        "step_s": step_seconds(marks, warmup),
        "settings": overrides,
        # what the layers recomputed, as resolved where this ran (the default depends on the device)
        "recompute": recompute_mode(cfg),
        "torch_compile_mode": compile_mode(cfg) if use_compile(cfg) else None,  # likewise (CUDA graphs or not)
        **({"loss_error": loss_error} if loss_error else {}),
    }
    del trainer
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return result


def run_notes(configs: list[str], note: str) -> list[str]:
    """Each config's note: a config named again in one run gets "; run N" on its note (as bench/gpu_compile.sh gives a
    config run again in a new process), since the records are keyed by model, config and note and the second run
    would otherwise replace the first's."""
    seen: dict[str, int] = {}
    notes = []
    for name in configs:
        seen[name] = seen.get(name, 0) + 1
        notes.append(note if seen[name] == 1 else f"{note}; run {seen[name]}" if note else f"run {seen[name]}")
    return notes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m, a model folder, or " + ", ".join(ARCHS))
    p.add_argument("--configs", nargs="+", default=["tutorial", "gemsql"], help="any of: " + ", ".join(CONFIGS))
    p.add_argument("--tokens", type=int, default=200_000, help="trained tokens per config (the same for all)")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    p.add_argument("--rows", type=int, default=4000)
    p.add_argument("--eval_rows", type=int, default=256)
    p.add_argument("--set", nargs="*", default=[], help="extra overrides for every config: key=value (YAML values)")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default="docs/benchmarks/train_throughput.json")
    p.add_argument("--profile", default=None, help="folder for a torch.profiler summary of 3 steps per config")
    p.add_argument("--syncs", default=None, help="folder for where 3 steps per config made the CPU wait for the "
                   "GPU, by caller (bench/host_syncs.py; the bench's own step clock synchronises once a step)")
    p.add_argument("--memory", default=None, help="folder for what each config's peak GPU memory holds "
                   "(bench/memory_peak.py; the allocator's trace slows the steps, so give such runs their own --note)")
    p.add_argument("--note", default="", help="kept with the records; a new note keeps the older records of the "
                   "same model and config instead of replacing them")
    args = p.parse_args()

    import yaml

    base = {"dataset": "builtin", "num_rows": args.rows, "test_size": args.eval_rows, "save_strategy": "no",
            "report_to": "none", "logging_steps": 1000}
    base.update({k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)})
    work = Path(args.work or tempfile.mkdtemp(prefix="gemsql-bench-"))
    model_path = args.model
    if args.model in ARCHS:
        from gemsql.model import resolve_model

        model_path = build_random(args.model, work / args.model, resolve_model("gemma-3-270m"))
    data_cfg = load_config(None, **base, model_name_or_path=model_path, output_dir=str(work / "data_run"))
    prepare(data_cfg)
    out = Path(args.out)
    for name, note in zip(args.configs, run_notes(args.configs, args.note)):
        try:
            r = bench_one(model_path, name, CONFIGS[name], work / "data_run", work, args.tokens, args.warmup,
                          args.eval_rows, base, Path(args.profile) if args.profile else None,
                          Path(args.memory) if args.memory and torch.cuda.is_available() else None,
                          Path(args.syncs) if args.syncs else None)
        except Exception as e:  # one lever failing (a kernel missing, out of memory) must not lose the others
            r = {"config": name, "error": failure(e, 500)}
        r["model"] = args.model
        r["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        if note:
            r["note"] = note
        print(json.dumps(r), flush=True)
        record(out, r, key=("model", "config", "note"))  # after every config, so a time limit never loses the finished ones
    return 0


if __name__ == "__main__":
    sys.exit(main())
