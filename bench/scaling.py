"""Multi-GPU scaling of gemsql's training: tokens/s, peak memory per GPU and training loss of one config on 1 GPU
and on N, with the same per-GPU micro-batch and the same global batch. The 1-GPU run accumulates N micro-batches
per optimizer step, so every run takes the same optimizer steps over the same tokens and their losses compare
(`--accumulation K`: the N-GPU run accumulates K, the 1-GPU run N x K).

    python3 bench/scaling.py --model gemma-3-270m --strategy ddp --gpus 1 2                # real weights, DDP
    python3 bench/scaling.py --model gemma-3-4b-random --strategy fsdp --gpus 1 2          # FSDP-QLoRA
    python3 bench/scaling.py --model gemma-3-12b-random --strategy fsdp --gpus 1 2 --tokens 20000
    python bench/scaling.py --model tiny --strategy ddp --gpus 1 2 --tokens 3000           # this CPU (gloo)

Each GPU count is its own launch of this script as a worker (`--worker`): torchrun for ddp, `accelerate launch`
with configs/accelerate/fsdp_qlora.yaml (FSDP1), fsdp2_qlora.yaml or zero3_qlora.yaml for fsdp, fsdp2 and zero3,
as the README's one-liners do.
NVLink multicast stays off in every launch (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1,
NVSHMEM_DISABLE_NVLS=1). Records: docs/benchmarks/scaling.json, one per (model, strategy, gpus, note):
{"model", "strategy", "gpus", "tokens_per_s", "peak_gib_per_gpu", "loss", ...}; `speedup` is against the
1-GPU run of the same invocation. `--repeats 3` launches each GPU count three times, interleaved, and records the
median launch's tokens/s with every launch's (`tokens_per_s_runs`): two identical launches can differ by a fifth.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from results_file import record

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_CONFIGS = {"fsdp": "fsdp_qlora.yaml", "fsdp2": "fsdp2_qlora.yaml", "zero3": "zero3_qlora.yaml"}
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_path(name: str, work: Path) -> str:
    """A model folder: the tiny test model, a random-init Gemma 3 of a published size, or what gemsql resolves."""
    if name == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny import make_tiny_model

        return str(make_tiny_model(work / "tiny"))
    from train_throughput import ARCHS, build_random

    from gemsql.model import resolve_model

    if name in ARCHS:
        return build_random(name, work / name, resolve_model("gemma-3-270m"))
    return resolve_model(name)


def launch_command(strategy: str, gpus: int, extra: Sequence[str] = ()) -> list[str]:
    """The launcher's command line up to the script: torchrun for ddp, else `accelerate launch` with the shipped
    config of the strategy; `extra` launcher options come last (accelerate's override its config file's values)."""
    if strategy == "ddp":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus),
                "--master_port", str(free_port()), *extra]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "configs" / "accelerate" / LAUNCH_CONFIGS[strategy]), "--num_processes", str(gpus),
            "--main_process_port", str(free_port()), *extra]


def core_share(cpus: list[int], siblings: dict[int, str], rank: int, slots: int) -> list[int]:
    """Rank `rank`'s share of `cpus` when `slots` processes split them: whole physical cores (a core's hardware threads,
    `siblings[cpu]` naming its core), contiguous, no core in two shares; logical CPUs where there are fewer physical
    cores than processes."""
    cores: dict[str, list[int]] = {}
    for cpu in cpus:
        cores.setdefault(siblings.get(cpu, str(cpu)), []).append(cpu)
    groups = list(cores.values()) if len(cores) >= slots else [[cpu] for cpu in cpus]
    per = max(1, len(groups) // slots)
    return [cpu for group in groups[rank * per:(rank + 1) * per] for cpu in group] or cpus


def bind_to_core_share(slots: int) -> list[int]:
    """Bind this process (and the threads it starts later) to its share of the machine's cores (`core_share`, by
    LOCAL_RANK): launchers leave every process free to run anywhere, and two processes' Python loops then contend
    for cores and their hardware threads."""
    cpus = sorted(os.sched_getaffinity(0))
    siblings = {}
    for cpu in cpus:
        try:
            siblings[cpu] = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            pass
    mine = core_share(cpus, siblings, int(os.environ.get("LOCAL_RANK", "0")), slots)
    os.sched_setaffinity(0, mine)
    return mine


def run_config(base: dict, path: str, run_dir: Path, gpus: int, most: int, micro_batch: int, tokens: int,
               accumulation: int = 1) -> Path:
    """The YAML config of one launch: the same global batch for every GPU count, the launch of the most GPUs
    accumulating `accumulation` micro-batches a step (and one GPU `most` times as many)."""
    per_step = micro_batch * most * accumulation * base.get("max_length", 512)
    values = {**base, "model_name_or_path": path, "output_dir": str(run_dir), "per_device_train_batch_size": micro_batch,
              "gradient_accumulation_steps": most * accumulation // gpus,
              "max_steps": 4 * max(4, math.ceil(tokens / per_step))}
    config = run_dir.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(values))
    return config


PROFILED_STEPS = 3
MIN_TIMED_STEPS = 5


def worker(config: Path, tokens: int, warmup: int, result: Path, profile: Path | None = None,
           cpus: list[int] | None = None) -> None:
    """One process of a launch: train until `tokens` (all processes together), then rank 0 writes the figures.
    With `profile`, every rank profiles the steps after the warm-up (one profiler warm-up step, then
    PROFILED_STEPS) into profile/rank<N>.txt, and the timing starts after them: profiled steps run slower."""
    from train_throughput import profiler_callback, token_clock

    from gemsql.config import load_config
    from gemsql.model import attention_kernels
    from gemsql.train import compile_mode, cudnn_in_training, recompute_mode, setup, use_compile

    cfg = load_config(config)
    trainer, _ = setup(cfg)
    marks: list[tuple[float, int]] = []
    if profile is not None:
        rank = trainer.accelerator.process_index
        trainer.add_callback(profiler_callback(warmup, PROFILED_STEPS, profile / f"rank{rank}.txt"))
        warmup += 1 + PROFILED_STEPS
    # at least MIN_TIMED_STEPS timed: the twelfth session's profiled 12B pair stopped at its 64,000 tokens two steps
    # after the profiled ones, and two steps gave 2.02x where the unprofiled pair's six gave 1.20x
    trainer.add_callback(token_clock(marks, tokens, warmup, min_timed=MIN_TIMED_STEPS))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with attention_kernels(cudnn_in_training(cfg)):
        out = trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    # each process's peak, mean loss and CPUs (--cpu_binding), to every process: the fullest GPU counts, the losses
    # are averaged
    mine = torch.tensor([[peak, out.training_loss, len(cpus or [])]], dtype=torch.float64,
                        device=trainer.accelerator.device)
    every = trainer.accelerator.gather(mine).cpu()
    if not trainer.accelerator.is_main_process:
        return
    (t0, n0), (t1, n1) = marks[warmup - 1], marks[-1]
    wrapped = trainer.model_wrapped  # what DDP ran with, where it wrapped the model
    ddp = ({"find_unused_parameters": wrapped.find_unused_parameters, "broadcast_buffers": wrapped.broadcast_buffers}
           if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel) else None)
    result.write_text(json.dumps({
        "tokens_per_s": round((n1 - n0) / (t1 - t0), 1),
        "peak_gib_per_gpu": round(float(every[:, 0].max()), 2) if torch.cuda.is_available() else None,
        "loss": round(float(every[:, 1].mean()), 4), "trained_tokens": int(n1), "steps": len(marks),
        "processes": trainer.accelerator.num_processes, **({"ddp": ddp} if ddp else {}),
        "recompute": recompute_mode(cfg),  # as resolved where it ran (the default depends on the device)
        "torch_compile_mode": compile_mode(cfg) if use_compile(cfg) else None,  # likewise
        **({"cpus_per_process": [int(n) for n in every[:, 2]]} if cpus is not None else {}),
    }))


def launch(a, base: dict, path: str, work: Path, gpus: int, env: dict, first: bool) -> dict:
    """One launch of `gpus` processes on the prepared rows: its figures, or {"error": ...} with the log's end. Only
    the first launch of a GPU count is profiled (with --profile) and starts its log afresh."""
    run_dir = work / f"{a.strategy}-{gpus}"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(work / "data", run_dir)  # the same prepared rows
    config = run_config(base, path, run_dir, gpus, max(a.gpus), a.micro_batch, a.tokens, a.accumulation)
    result = run_dir / "scaling_result.json"
    cmd = [*launch_command(a.strategy, gpus, a.launch_args.split()), str(Path(__file__).resolve()), "--worker",
           str(config), str(result), "--tokens", str(a.tokens), "--warmup", str(a.warmup)]
    if a.profile and first:
        cmd += ["--profile_dir", str(run_dir.with_suffix(".profile"))]
    if a.cpu_binding:  # every launch's processes get equal shares: the 1-GPU one the share of one rank of the most
        cmd += ["--cpu_slots", str(max(a.gpus))]
    log = run_dir.with_suffix(".log")
    with log.open("w" if first else "a") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if rc == 0 and result.is_file():
        return json.loads(result.read_text())
    return {"error": f"exit {rc}: " + log.read_text()[-400:]}


def write_records(a, runs: dict[int, list[dict]], threads: int) -> None:
    """One record per GPU count launched so far: with --repeats, the median launch's tokens/s and every launch's."""
    single = None
    for gpus in sorted(g for g in a.gpus if runs[g]):
        done = [r for r in runs[gpus] if "tokens_per_s" in r]
        r = dict(done[0] if len(done) == len(runs[gpus]) else next(r for r in runs[gpus] if "error" in r))
        if done and "error" not in r and a.repeats > 1:
            r["tokens_per_s_runs"] = [x["tokens_per_s"] for x in done]
            r["tokens_per_s"] = round(statistics.median(r["tokens_per_s_runs"]), 1)
        if gpus == min(a.gpus) and "tokens_per_s" in r:
            single = r
        r = {"model": a.model, "strategy": a.strategy, "gpus": gpus, **r, "micro_batch_per_gpu": a.micro_batch,
             "global_batch": a.micro_batch * max(a.gpus) * a.accumulation, "omp_threads": threads,
             **({"accumulation_most_gpus": a.accumulation} if a.accumulation > 1 else {}),
             **({"cpu_binding": True} if a.cpu_binding else {}),
             "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (processes)",
             "command": "python bench/scaling.py " + " ".join(sys.argv[1:]), **({"note": a.note} if a.note else {})}
        if single is not None and "tokens_per_s" in r and gpus != min(a.gpus):
            r["speedup"] = round(r["tokens_per_s"] / single["tokens_per_s"], 2)
            r["loss_vs_fewest"] = round(r["loss"] / single["loss"] - 1, 4)
        print(json.dumps(r), flush=True)
        record(a.out, r, key=("model", "strategy", "gpus", "device", "note"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m", help="gemma-3-270m, a model folder, tiny, or a random-init "
                   "size of bench/train_throughput.py (gemma-3-1b-random, gemma-3-4b-random, gemma-3-12b-random)")
    p.add_argument("--strategy", choices=["ddp", "fsdp", "fsdp2", "zero3"], default="ddp",
                   help="fsdp: FSDP1 (configs/accelerate/fsdp_qlora.yaml); fsdp2: fsdp2_qlora.yaml")
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 2], help="one launch per count (processes on the CPU)")
    p.add_argument("--micro_batch", type=int, default=4, help="sequences per GPU per micro-batch, the same for all")
    p.add_argument("--tokens", type=int, default=200_000, help="trained tokens per launch (all GPUs together)")
    p.add_argument("--accumulation", type=int, default=1,
                   help="micro-batches a step accumulated by the launch of the most GPUs (one GPU accumulates as many "
                   "times more): the per-step work (optimizer, clipping, logging) weighs less, the global batch grows")
    p.add_argument("--warmup", type=int, default=5, help="optimizer steps left out of the timing")
    p.add_argument("--rows", type=int, default=4000)
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides for every launch: key=value (YAML)")
    p.add_argument("--launch_args", default="", help="extra launcher options for every launch, one string: e.g. "
                   "\"--fsdp_reshard_after_forward false\" (accelerate's override the shipped config's values)")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default=str(ROOT / "docs/benchmarks/scaling.json"))
    p.add_argument("--note", default="", help="kept with the records (and in their key)")
    p.add_argument("--repeats", type=int, default=1,
                   help="launch every GPU count this many times, interleaved (1, 2, 1, 2, ...): the records keep each "
                   "launch's tokens/s and their median (one 270M launch pair on the H200 differed by a fifth)")
    p.add_argument("--cpu_binding", action="store_true",
                   help="bind each process to its own share of the physical cores (the 1-GPU launch to one rank's "
                   "share): the 270M's steps are bound by Python, and in the eighth session's profiles one rank "
                   "spent up to twice the other's CPU time outside operators")
    p.add_argument("--profile", action="store_true",
                   help=f"profile {PROFILED_STEPS} steps after the warm-up on every rank into WORK/<strategy>-<gpus>."
                   "profile/rank<N>.txt (GPU busy share, top operators); the timing starts after them")
    p.add_argument("--worker", nargs=2, metavar=("CONFIG", "RESULT"), help=argparse.SUPPRESS)
    p.add_argument("--profile_dir", help=argparse.SUPPRESS)  # a worker's --profile folder
    p.add_argument("--cpu_slots", type=int, help=argparse.SUPPRESS)  # a worker's --cpu_binding: processes to share
    a = p.parse_args()
    if a.worker:
        config, result = a.worker
        cpus = bind_to_core_share(a.cpu_slots) if a.cpu_slots else None
        worker(Path(config), a.tokens, a.warmup, Path(result), Path(a.profile_dir) if a.profile_dir else None, cpus)
        return 0

    from gemsql.config import load_config
    from gemsql.data import prepare

    work = Path(a.work or tempfile.mkdtemp(prefix="gemsql-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    path = model_path(a.model, work)
    base = {"dataset": "builtin", "num_rows": a.rows, "test_size": 64, "save_strategy": "no", "report_to": "none",
            "logging_steps": 1000}
    if a.model == "tiny":  # the CPU check: full-precision LoRA, short rows
        base.update(quantization="none", max_length=256)
    if a.strategy == "zero3":  # ZeRO-3 cannot train the turn-token rows (see the README)
        base["stop_token_training"] = "none"
    base.update({k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)})
    prepare(load_config(None, **base, model_name_or_path=path, output_dir=str(work / "data")))
    env = {**os.environ, **NO_MULTICAST, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "bench"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    # The same CPU threads per process for every launch: torchrun and accelerate set 1 for several processes and
    # leave a single process all the cores, which would favour the 1-GPU run in any CPU-side work.
    threads = max(1, (os.cpu_count() or 1) // max(a.gpus)) if torch.cuda.is_available() else 1
    env["OMP_NUM_THREADS"] = str(threads)
    runs: dict[int, list[dict]] = {gpus: [] for gpus in a.gpus}
    for repeat in range(a.repeats):
        for gpus in sorted(a.gpus):
            runs[gpus].append(launch(a, base, path, work, gpus, env, first=repeat == 0))
            # recorded launch by launch: a lease that ends mid-way keeps what finished
            write_records(a, runs, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
