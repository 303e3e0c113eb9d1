#!/usr/bin/env bash
# On nvidia-h200-x2, what the sixteenth session left to measure, most valuable first (records are written config by
# config, so a lease that ends early keeps what finished):
#   1. issue #4 (bench/gpu_compile.sh's defaults): the new default (selective recompute) beside the old one (no
#      recompute) and the tutorial's memory at 16 x 512 over 200,000 tokens, and both at 32 x 512 (half the
#      CPU-bound steps for the 270M), and with CUDA graphs (torch_compile_mode reduce-overhead, never run yet); the
#      4B at 32 x 512 as shipped over 15 steps (31.0 % MFU over six in the sixteenth session), also with CUDA graphs;
#      the 4B as shipped profiled (what bounds its 26 % MFU); the built-in epoch as shipped and at 32 x 512 (lr
#      4e-4 x sqrt 2);
#   2. issue #9 (bench/gpu_scaling.sh): the 270M's 16 x 512 DDP pair as shipped (selective recompute), three launches
#      each over 800,000 tokens (1.70x without recompute in the sixteenth session); the same with CUDA graphs, if
#      they paid on one GPU; the 12B under FSDP2 as shipped (selective recompute under FSDP2 has not run on a GPU);
#      the 270M pair again with two micro-batches a step (last: the lease may end before them).
# About 28 minutes after staging (the sixteenth session's launches: 270M DDP about a minute each, mostly start-up).
# The sixteenth session's plan is in git at 0054ac0. Poll back to back: a machine idle for 30 s is handed back.
#   setsid nohup bash bench/gpu_x2.sh /root/work > /root/work/job.log 2>&1 &
# Collect with bench/gpu_collect.sh /root/work "$OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh "${1:-/root/work}"

bash bench/gpu_compile.sh "$WORK"  # its default configs

# the DDP pair with CUDA graphs only where one GPU trained faster with them than without (the 270M's rows above)
PIECES=(ddp_270m16_default_repeats)
python3 - "$RECORDS/train_throughput_270m.json" <<'PY' && PIECES+=(ddp_270m16_cudagraphs_repeats)
import json, sys
rows = {r["config"]: r.get("tokens_per_s") or 0 for r in json.load(open(sys.argv[1]))}
sys.exit(0 if rows.get("gemsql_cudagraphs", 0) > rows.get("gemsql", 0) > 0 else 1)
PY
bash bench/gpu_scaling.sh "$WORK" "${PIECES[@]}" fsdp2_12b16_default ddp_270m16_default_accum2
step "all done"
