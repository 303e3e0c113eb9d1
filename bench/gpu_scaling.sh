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
# Sixth session: 270M 4 x 512, 4B 4 x 512, 12B 2 x 512 gave 1.67x, 1.45x, 1.39x. Seventh: 4x larger micro-batches
# made each GPU 3.5x faster and the ratios lower (1.41x, 1.33x, 1.35x). Eighth, profiled at the small micro-batches:
# 1.70x for the 270M with the trainer's DDP settings, 1.80x without DDP's unused-weight search and buffer broadcast
# (gemsql's default since), 1.34x for the 4B (its profile came back empty: fixed); two identical 1-GPU launches differed
# by a fifth, so each 270M setting now runs three times (median), and once more with each process bound to its own
# cores (one rank spent up to twice the other's CPU time outside operators); docs/benchmarks.md.
step "DDP, Gemma 3 270M (real weights), 4 x 512 per GPU, gemsql's DDP defaults, 3 launches of each, the first profiled"
timeout 900 python3 bench/scaling.py --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 200000 --repeats 3 --profile \
  --note "profiled, equal CPU threads, gemsql's DDP defaults, median of 3" --work "$WORK/sc270" --out "$OUT/scaling.json" > "$WORK/sc270.log" 2>&1
step "DDP, Gemma 3 270M, 4 x 512 per GPU, gemsql's DDP defaults, each process on its own share of the cores, 3 launches"
timeout 900 python3 bench/scaling.py --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 200000 --repeats 3 \
  --cpu_binding --note "equal CPU threads, gemsql's DDP defaults, cores bound, median of 3" --work "$WORK/sc270bound" \
  --out "$OUT/scaling.json" > "$WORK/sc270bound.log" 2>&1
step "FSDP-QLoRA, random-init 4B, 4 x 512 per GPU, profiled"
timeout 900 python3 bench/scaling.py --model gemma-3-4b-random --strategy fsdp --gpus 1 2 --tokens 60000 --warmup 3 \
  --profile --note "profiled, equal CPU threads" --work "$WORK/sc4b" --out "$OUT/scaling.json" > "$WORK/sc4b.log" 2>&1
mkdir -p "$WORK/sc4b-profiles" && cp -r "$WORK"/sc4b/*.profile "$WORK/sc4b-profiles/" 2>/dev/null
rm -rf "$WORK/sc4b"
step "DDP, Gemma 3 270M, 4 x 512 per GPU, the trainer's DDP settings (unused-weight search, buffer broadcast), 3 launches"
timeout 900 python3 bench/scaling.py --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 200000 --repeats 3 \
  --set ddp_find_unused_parameters=true ddp_broadcast_buffers=true \
  --note "equal CPU threads, trainer's DDP settings, median of 3" --work "$WORK/sc270full" --out "$OUT/scaling.json" > "$WORK/sc270full.log" 2>&1
step "FSDP-QLoRA, random-init 12B, 2 x 512 per GPU, profiled"
timeout 900 python3 bench/scaling.py --model gemma-3-12b-random --strategy fsdp --gpus 1 2 --tokens 24000 --warmup 3 \
  --micro_batch 2 --profile --note "profiled, equal CPU threads" --work "$WORK/sc12b" --out "$OUT/scaling.json" \
  > "$WORK/sc12b.log" 2>&1
step done
