#!/usr/bin/env bash
# On nvidia-h200-x2, what the seventeenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults): CUDA graphs (torch_compile_mode reduce-overhead) without recompute,
#      the 270M's step being bound by the CPU that launches it and the 4B's GPU a third idle (seventeenth session's
#      profile); with recompute they stopped in the first steps (seventeenth session), now refused. Beside them the
#      default (selective recompute) and no recompute, each 270M config twice, and the tutorial in the same run; the
#      4B the same three and as shipped without LoRA dropout (a quarter of its GPU time is fused element-wise
#      kernels, dropout among them), its host syncs counted by caller (bench/host_syncs.py); the built-in epoch with
#      CUDA graphs and without LoRA dropout (do they keep the accuracy?).
#   2. issue #9 (bench/gpu_scaling.sh): the 270M's DDP pair with CUDA graphs, if they beat no recompute on one GPU;
#      then the pair as shipped with two micro-batches a step, all three launches (the lease ended in the third in the
#      seventeenth session).
# About 28 minutes after staging. The seventeenth session's plan is in git at fbd3189. Poll back to back: a machine
# idle for 30 s is handed back.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

# the DDP pair with CUDA graphs only where one GPU trained faster with them than without recompute (the 270M's rows
# above, the mean of each config's runs; a run that failed counts as 0 tokens/s)
PIECES=()
python3 - "$RECORDS/train_throughput_270m.json" <<'PY' && PIECES+=(ddp_270m16_cudagraphs_repeats)
import json, statistics, sys
runs = {}
for r in json.load(open(sys.argv[1])):
    runs.setdefault(r["config"], []).append(r.get("tokens_per_s") or 0)
mean = {c: statistics.mean(v) for c, v in runs.items()}
sys.exit(0 if mean.get("gemsql_no_recompute_cudagraphs", 0) > mean.get("gemsql_no_recompute", 0) > 0 else 1)
PY
bash bench/gpu_scaling.sh "$WORK" "${PIECES[@]}" ddp_270m16_default_accum2
step "all done"
