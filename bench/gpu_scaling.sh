#!/usr/bin/env bash
# Issue #9 on nvidia-h200-x2: 1 GPU vs 2 with the same per-GPU micro-batch and global batch (bench/scaling.py).
# Stage as for bench/gpu_next.sh, then, detached, polling back to back:
#   setsid nohup bash bench/gpu_scaling.sh /root/work > /root/work/job.log 2>&1 &
# NVLink multicast stays off: bench/scaling.py sets NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1 and
# NVSHMEM_DISABLE_NVLS=1 in every launch's environment (and they are exported here too).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1
# The sixth session ran the small micro-batches (270M 4 x 512, 4B 4 x 512, 12B 2 x 512: 1.67x, 1.45x, 1.39x;
# docs/benchmarks.md). Next: larger per-GPU micro-batches, which amortize each step's fixed costs (the
# all-reduce or FSDP's all-gathers and reduce-scatters, the optimizer step, the kernel launches). The 4B and 12B time fewer, longer
# steps (warm-up 3 steps, then 7 and 5 timed) so that the whole script and a Spider phase fit one 30-minute lease.
step "DDP, Gemma 3 270M (real weights), 16 x 512 per GPU"
timeout 600 python3 bench/scaling.py --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 400000 --micro_batch 16 \
  --note "micro-batch 16" --work "$WORK/sc270" --out "$OUT/scaling.json" > "$WORK/sc270.log" 2>&1
step "FSDP-QLoRA, random-init 4B, 16 x 512 per GPU"
timeout 900 python3 bench/scaling.py --model gemma-3-4b-random --strategy fsdp --gpus 1 2 --tokens 160000 \
  --micro_batch 16 --warmup 3 --note "micro-batch 16" --work "$WORK/sc4b" --out "$OUT/scaling.json" > "$WORK/sc4b.log" 2>&1
rm -rf "$WORK/sc4b"
step "FSDP-QLoRA, random-init 12B, 8 x 512 per GPU"
timeout 900 python3 bench/scaling.py --model gemma-3-12b-random --strategy fsdp --gpus 1 2 --tokens 64000 \
  --micro_batch 8 --warmup 3 --note "micro-batch 8" --work "$WORK/sc12b" --out "$OUT/scaling.json" > "$WORK/sc12b.log" 2>&1
step done
