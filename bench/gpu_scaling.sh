#!/usr/bin/env bash
# Issue #9 on nvidia-h200-x2: 1 GPU vs 2 with the same per-GPU micro-batch and global batch (bench/scaling.py).
# Stage as for bench/gpu_next.sh (pack with accelerate carried, as in the ninth session, so the GPU machine runs the
# version tested here: DEVICE_EXTRA="accelerate peft rich ..." bash ../shared/device/pack.sh .venv/bin/python), then,
# detached, polling back to back:
#   setsid nohup bash bench/gpu_scaling.sh /root/work [PIECE ...] > /root/work/job.log 2>&1 &
# PIECEs (default: all, in this order): fsdp2_4b fsdp2_4b_keep fsdp2_4b_units4 fsdp2_12b ddp_270m ddp_270m_accum2
# fsdp2_4b16 fsdp2_train; not in the default list: fsdp2_4b16_compile ddp_270m16_compile fsdp2_12b8_compile (eleventh
# session, after bench/gpu_compile.sh), fsdp2_12b8_compile_long (twelfth), fsdp2_12b16_recompute ddp_270m32_compile
# ddp_270m16_compile_profiled (thirteenth); ddp_270m16_compile_repeats (fifteenth);
# fsdp2_4b_profiled profiles every rank as well (the tenth session's run; its profiles are in docs/benchmarks/).
# NVLink multicast stays off: bench/scaling.py sets NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1 and
# NVSHMEM_DISABLE_NVLS=1 in every launch's environment (and they are exported here too).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-/root/work}"
shift
PIECES=("$@")
[ ${#PIECES[@]} -gt 0 ] ||
  PIECES=(fsdp2_4b fsdp2_4b_keep fsdp2_4b_units4 fsdp2_12b ddp_270m ddp_270m_accum2 fsdp2_4b16 fsdp2_train)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "from gemsql.model import resolve_model; print(resolve_model('gemma-3-270m'))" || exit 1
# Sixth to eighth sessions (FSDP1, configs/accelerate/fsdp_qlora.yaml): the 4B 1.45x / 1.33x / 1.34x, the 12B 1.39x /
# 1.35x; the 270M DDP 1.67x-1.80x, ninth session 1.58x (median of 3), tenth 1.75x (cores bound, one pair). Under FSDP1
# the trainer gives every LoRA matrix its own FSDP unit (PEFT's wrap policy); configs/accelerate/fsdp2_qlora.yaml makes
# one unit per decoder layer. Tenth session: the 4B under FSDP2 3,079 tokens/s on one GPU (FSDP1: 929-1,144), about
# 1.1x that on two by the progress bar (recorded 0.90x: the profiler's summary made rank 0 wait; fixed since). The
# profiles: 76 all-gathers a step (every layer gathered for the forward and again for the backward), each a point where
# the two Python-bound ranks wait for each other. fsdp2_4b_keep keeps each layer gathered from its forward to its
# backward (half the gathers); fsdp2_4b_units4 also shards four layers a unit (fsdp_layers_per_unit: 4, an eighth).

# Since the twelfth session gemsql compiles the layers by default on a GPU: the pieces without "compile" in their name
# keep measuring what they measured before with --set torch_compile=false. Since the sixteenth session compiled 4-bit
# layers recompute selectively by default: the compiled pieces from before keep gradient_checkpointing=false.
scale() {  # NAME FLAGS...: one bench/scaling.py invocation into $WORK/NAME, its log $WORK/NAME.log
  local name=$1; shift
  timeout 900 python3 bench/scaling.py "$@" --work "$WORK/$name" --out "$RECORDS/scaling.json" > "$WORK/$name.log" 2>&1
  tail -3 "$WORK/$name.log"
}

FSDP2_4B=(--model gemma-3-4b-random --strategy fsdp2 --gpus 1 2 --warmup 3)

fsdp2_4b_profiled() {
  step "FSDP2-QLoRA, random-init 4B, 4 x 512 per GPU, profiled"
  scale sc4b "${FSDP2_4B[@]}" --tokens 60000 --profile --set torch_compile=false --note "FSDP2, profiled, equal CPU threads"
  mkdir -p "$WORK/sc4b-profiles" && cp -r "$WORK"/sc4b/*.profile "$WORK/sc4b-profiles/" 2>/dev/null
}

fsdp2_4b() {
  step "FSDP2-QLoRA, random-init 4B, 4 x 512 per GPU, not profiled"
  scale sc4bplain "${FSDP2_4B[@]}" --tokens 60000 --set torch_compile=false --note "FSDP2, equal CPU threads"
}

fsdp2_4b_keep() {
  step "FSDP2-QLoRA, random-init 4B, 4 x 512 per GPU, layers kept gathered from forward to backward"
  scale sc4bkeep "${FSDP2_4B[@]}" --tokens 60000 --launch_args "--fsdp_reshard_after_forward false" \
    --set torch_compile=false --note "FSDP2, no reshard after forward, equal CPU threads"
}

fsdp2_4b_units4() {
  step "FSDP2-QLoRA, random-init 4B, 4 x 512 per GPU, four layers a unit, kept gathered from forward to backward"
  scale sc4bunits4 "${FSDP2_4B[@]}" --tokens 60000 --launch_args "--fsdp_reshard_after_forward false" \
    --set fsdp_layers_per_unit=4 torch_compile=false --note "FSDP2, four layers a unit, no reshard after forward, equal CPU threads"
}

fsdp2_4b16() {
  step "FSDP2-QLoRA, random-init 4B, 16 x 512 per GPU"
  scale sc4b16 "${FSDP2_4B[@]}" --tokens 160000 --micro_batch 16 --set torch_compile=false --note "FSDP2, equal CPU threads, micro-batch 16"
}

# Eleventh session: each decoder layer compiled (torch_compile), so that a step costs less Python per layer and the
# GPUs, not the ranks' Python, set the pace; the micro-batches of the seventh session's FSDP1 rows
fsdp2_4b16_compile() {
  step "FSDP2-QLoRA, random-init 4B, 16 x 512 per GPU, layers compiled"
  scale sc4b16c "${FSDP2_4B[@]}" --tokens 160000 --micro_batch 16 --set torch_compile=true gradient_checkpointing=false \
    --note "FSDP2, equal CPU threads, micro-batch 16, layers compiled"
}

ddp_270mc() {  # NAME MICRO_BATCH [NOTE SUFFIX [more bench/scaling.py flags]]: the 270M under DDP, layers compiled
  step "DDP, Gemma 3 270M, $2 x 512 per GPU, layers compiled, cores bound${3:-}"
  scale "$1" --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 400000 --micro_batch "$2" --cpu_binding \
    --set torch_compile=true gradient_checkpointing=false "${@:4}" \
    --note "equal CPU threads, gemsql's DDP defaults, cores bound, micro-batch $2, layers compiled${3:-}"
}

ddp_270m16_compile() { ddp_270mc sc270c16 16; }

fsdp2_12b8c() {  # NAME TOKENS [NOTE SUFFIX]: the random-init 12B under FSDP2 at 8 x 512 per GPU, layers compiled
  step "FSDP2-QLoRA, random-init 12B, 8 x 512 per GPU, layers compiled, $2 tokens"
  scale "$1" --model gemma-3-12b-random --strategy fsdp2 --gpus 1 2 --tokens "$2" --warmup 3 --micro_batch 8 \
    --set torch_compile=true gradient_checkpointing=false \
    --note "FSDP2, equal CPU threads, micro-batch 8, layers compiled${3:-}"
}

fsdp2_12b8_compile() { fsdp2_12b8c sc12b8c 64000; }

# Thirteenth session: the 12B 1.54x at 8 x 512, its one-GPU step bound on the CPU side; twice the tokens a step, with
# recompute inside the compiled layers (1a0b5b1) to make room for them
fsdp2_12b16_recompute() {
  step "FSDP2-QLoRA, random-init 12B, 16 x 512 per GPU, layers compiled with recompute, 200000 tokens"
  scale sc12b16r --model gemma-3-12b-random --strategy fsdp2 --gpus 1 2 --tokens 200000 --warmup 3 --micro_batch 16 \
    --set torch_compile=true gradient_checkpointing=true recompute=full \
    --note "FSDP2, equal CPU threads, micro-batch 16, layers compiled with recompute, 200k tokens"
}

# Thirteenth session: the 270M 1.46x at 16 x 512 (0.15 s a step on one GPU); half the steps for the same tokens
ddp_270m32_compile() { ddp_270mc sc270c32 32; }
# and what bounds its two-GPU step at 16 x 512, every rank profiled ($WORK/sc270c16p/*.profile/rank<N>.txt)
ddp_270m16_compile_profiled() { ddp_270mc sc270c16p 16 ", profiled" --profile; }
# fifteenth session: 1.96x timed after a profiler window (one-GPU run slower than usual), 1.63x at 32 x 512 over 9
# timed steps, 1.46x unprofiled in the thirteenth: three launches of each GPU count, interleaved, over twice the tokens
ddp_270m16_compile_repeats() { ddp_270mc sc270c16r 16 ", 800k tokens, median of 3" --tokens 800000 --repeats 3; }
# sixteenth session: 1.70x (median of 3) without recompute; the shipped default since then recomputes selectively
ddp_270m16_default_repeats() {
  step "DDP, Gemma 3 270M, 16 x 512 per GPU, as shipped (compiled, selective recompute), 800k tokens, median of 3"
  scale sc270d16r --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 800000 --repeats 3 --micro_batch 16 \
    --cpu_binding --note "equal CPU threads, cores bound, micro-batch 16, as shipped (layers compiled, recompute selective), 800k tokens, median of 3"
}
# and with two micro-batches a step on two GPUs (four on one): a step's own work, paid once a micro-batch on two GPUs
# and once per two on one at equal global batch, spread over twice the micro-batches (tests that explanation)
# (as shipped: from the twentieth session's code on, CUDA graphs with selective recompute; the records name the mode)
ddp_270m16_default_accum2() {
  step "DDP, Gemma 3 270M, 16 x 512 per GPU, as shipped, 2 micro-batches a step on 2 GPUs (4 on 1), 800k tokens, median of 3"
  scale sc270d16a2 --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 800000 --repeats 3 --micro_batch 16 \
    --accumulation 2 --cpu_binding \
    --note "equal CPU threads, cores bound, micro-batch 16, accumulation 2, as shipped (layers compiled, recompute lean), 800k tokens, median of 3"
}
# and with each compiled layer replayed as CUDA graphs (torch_compile_mode reduce-overhead; without recompute, the only
# way they were thought to work until the nineteenth session): if the step stops being bound by the CPU that launches
# it, what the ranks wait for at each step shrinks with it (the sixteenth session's pair without recompute and without
# graphs: 1.70x; this pair 1.72x in the nineteenth)
ddp_270m16_cudagraphs_repeats() {
  step "DDP, Gemma 3 270M, 16 x 512 per GPU, CUDA graphs without recompute, 800k tokens, median of 3"
  scale sc270g16r --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 800000 --repeats 3 --micro_batch 16 \
    --cpu_binding --set torch_compile_mode=reduce-overhead gradient_checkpointing=false \
    --note "equal CPU threads, cores bound, micro-batch 16, layers compiled as CUDA graphs, no recompute, 800k tokens, median of 3"
}
# eighteenth session: the one-GPU launches (two micro-batches a step) stopped in their first step, the first
# micro-batch's gradients overwritten by the second's replay (pytorch/pytorch#169545); gemsql copies them out since.
# And with two micro-batches a step on two GPUs (four on one): the copy under DDP's no_sync
ddp_270m16_cudagraphs_accum2() {
  step "DDP, Gemma 3 270M, 16 x 512 per GPU, CUDA graphs without recompute, 2 micro-batches a step on 2 GPUs (4 on 1), 800k tokens, median of 3"
  scale sc270g16a2 --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 800000 --repeats 3 --micro_batch 16 \
    --accumulation 2 --cpu_binding --set torch_compile_mode=reduce-overhead gradient_checkpointing=false \
    --note "equal CPU threads, cores bound, micro-batch 16, accumulation 2, layers compiled as CUDA graphs, no recompute, 800k tokens, median of 3"
}
# nineteenth session: CUDA graphs with selective recompute, the one-process default since (a launch of several
# processes kept torch.compile's default mode unless asked until the twentieth session, and bench/scaling.py pinned
# one mode for both launches until then; the DDP default too since):
# the one-GPU launch (two micro-batches a step) ran at 83,062 tokens/s, 3.5 GiB, the two-GPU one was not reached
ddp_270m16_graphs_selective_repeats() {
  step "DDP, Gemma 3 270M, 16 x 512 per GPU, CUDA graphs with selective recompute, 800k tokens, median of 3"
  scale sc270gs16r --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 800000 --repeats 3 --micro_batch 16 \
    --cpu_binding --set torch_compile_mode=reduce-overhead \
    --note "equal CPU threads, cores bound, micro-batch 16, layers compiled as CUDA graphs, recompute selective, 800k tokens, median of 3"
}
# twentieth session: that pair ran at 1.59x (90,182 and 143,400 tokens/s) while CUDA graphs without recompute at two
# micro-batches a step on two GPUs ran at 1.89x: the shipped recompute at two micro-batches a step
ddp_270m16_graphs_selective_accum2() {
  step "DDP, Gemma 3 270M, 16 x 512 per GPU, CUDA graphs with selective recompute, 2 micro-batches a step on 2 GPUs (4 on 1), 800k tokens"
  scale sc270gs16a2 --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 800000 --micro_batch 16 \
    --accumulation 2 --cpu_binding --set torch_compile_mode=reduce-overhead \
    --note "equal CPU threads, cores bound, micro-batch 16, accumulation 2, layers compiled as CUDA graphs, recompute selective, 800k tokens"
}
# FSDP2 with the shipped default (selective recompute inside the compiled layers: not run under FSDP2 on a GPU before)
fsdp2_12b16_default() {
  step "FSDP2-QLoRA, random-init 12B, 16 x 512 per GPU, as shipped (compiled, selective recompute), 200000 tokens"
  scale sc12b16d --model gemma-3-12b-random --strategy fsdp2 --gpus 1 2 --tokens 200000 --warmup 3 --micro_batch 16 \
    --note "FSDP2, equal CPU threads, micro-batch 16, as shipped (layers compiled, recompute selective), 200k tokens"
}
# twelfth session: 1.20x over six timed steps; three times the steps
fsdp2_12b8_compile_long() { fsdp2_12b8c sc12b8cl 200000 ", 200k tokens"; }

fsdp2_12b() {
  step "FSDP2-QLoRA, random-init 12B, 2 x 512 per GPU"
  scale sc12b --model gemma-3-12b-random --strategy fsdp2 --gpus 1 2 --tokens 24000 --warmup 3 --micro_batch 2 \
    --set torch_compile=false --note "FSDP2, equal CPU threads"
}

ddp_270m() {
  step "DDP, Gemma 3 270M, 4 x 512 per GPU, gemsql's DDP defaults, each process on its own share of the cores, 3 launches"
  # ninth session without binding: 1.58x (median of 3); tenth, bound, one pair: 1.75x
  scale sc270bound --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 200000 --repeats 3 --cpu_binding \
    --set torch_compile=false --note "equal CPU threads, gemsql's DDP defaults, cores bound, median of 3"
}

ddp_270m_accum2() {
  step "DDP, Gemma 3 270M, 4 x 512 per GPU, two micro-batches a step on two GPUs (four on one), cores bound, 3 launches"
  # a step's own work (optimizer, clipping, the trainer's logging) is paid once per step: with two micro-batches a
  # step on two GPUs it weighs half as much against them, and DDP reduces the gradients once per two micro-batches
  scale sc270acc2 --model gemma-3-270m --strategy ddp --gpus 1 2 --tokens 200000 --repeats 3 --cpu_binding \
    --accumulation 2 --set torch_compile=false --note "equal CPU threads, gemsql's DDP defaults, cores bound, accumulation 2, median of 3"
}

fsdp2_train() {  # the scaling runs save nothing: this checks FSDP2's checkpoints, the adapter and a resume
  step "FSDP2 end to end: gemsql train on 2 GPUs, 30 steps with checkpoints at 15 and 30, then resumed to 40"
  python3 -m gemsql prepare configs/builtin-gpu.yaml --num_rows 3000 --test_size 100 --output_dir "$WORK/fsdp2" \
    > "$WORK/fsdp2.log" 2>&1
  local steps
  for steps in 30 40; do
    timeout 600 python3 -m accelerate.commands.launch --config_file configs/accelerate/fsdp2_qlora.yaml --num_processes 2 \
      -m gemsql train configs/builtin-gpu.yaml --num_rows 3000 --test_size 100 --save_strategy steps --save_steps 15 \
      --logging_steps 10 --report_to none --output_dir "$WORK/fsdp2" --max_steps $steps >> "$WORK/fsdp2.log" 2>&1
    step "fsdp2 to $steps steps: exit $?"
  done
  ls -la "$WORK/fsdp2/adapter" "$WORK/fsdp2/checkpoints" 2>&1 | tail -20
  grep -a "'loss'\|adapter:\|resum\|Error\|error" "$WORK/fsdp2.log" | tail -20
}

for piece in "${PIECES[@]}"; do
  "$piece"
done
step "scaling pieces done: ${PIECES[*]}"
