"""Evaluation speed: gemsql's batched, length-sorted generation + execution scoring, against the
tutorial's one-prompt-at-a-time `pipeline("text-generation")` on the same prompts (also scored).

Examples/s counts the whole evaluation of an example: prompt, generation, SQL extraction and
executing prediction and gold. The baseline may run on the first --baseline_rows of the same
prompts (it is slow); its rate is over those.

    python bench/eval_throughput.py --model runs/quickstart/merged --rows 1000 --baseline_rows 100
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from gemsql.data.builtin import generate as builtin_rows
from gemsql.data.prompt import user_message
from gemsql.evaluate.score import score
from gemsql.generate import execution_guided, extract_sql, generate_sql, load_for_generation
from gemsql.model import stop_token_ids
from results_file import record


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def gemsql_eval(model, tok, rows, batch_size: int, max_new_tokens: int, cudnn_attention: bool = True,
                guided_beams: int = 0, vote: bool = False) -> dict:
    """One timed evaluation: examples/s over generation (with execution-guided decoding when `guided_beams`) +
    scoring, and each part's seconds."""
    sync()
    start = time.perf_counter()
    pairs = [(r.question, r.context) for r in rows]
    gens = generate_sql(model, tok, pairs, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False,
                        cudnn_attention=cudnn_attention)
    sync()
    greedy = time.perf_counter()
    if guided_beams:
        gens = execution_guided(model, tok, pairs, gens, [r.context for r in rows], beams=guided_beams, vote=vote,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, cudnn_attention=cudnn_attention)
        sync()
    generated = time.perf_counter()
    verdicts = [score(r.context, r.sql, g.sql) for r, g in zip(rows, gens)]
    end = time.perf_counter()
    return {"examples_per_s": len(rows) / (end - start), "exec_match": sum(v.exec_match for v in verdicts) / len(rows),
            "valid": sum(v.valid for v in verdicts) / len(rows),
            "generate_s": round(generated - start, 2), "guided_s": round(generated - greedy, 2),
            "score_s": round(end - generated, 2), "new_tokens": sum(g.new_tokens for g in gens),
            "stop_reasons": dict(Counter(g.stop_reason for g in gens)),
            "candidates": dict(Counter(g.candidate for g in gens))}


def profile_eval(model, tok, rows, batch_size: int, max_new_tokens: int, out: Path, cudnn_attention: bool) -> None:
    """Where an evaluation's time goes: Python functions by own time (cProfile) and the GPU's busy share."""
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    cpu = cProfile.Profile()
    with profile(activities=activities) as prof:
        cpu.enable()
        result = gemsql_eval(model, tok, rows, batch_size, max_new_tokens, cudnn_attention)
        cpu.disable()
    wall = len(rows) / result["examples_per_s"]
    from train_throughput import kernel_time

    gpu_s = kernel_time(prof.key_averages()) / 1e6
    text = io.StringIO()
    pstats.Stats(cpu, stream=text).sort_stats("tottime").print_stats(30)
    out.write_text(f"batch {batch_size}, cudnn_attention {cudnn_attention}, {len(rows)} rows (profiled, slower than unprofiled): {wall:.1f} s, "
                   f"generate {result['generate_s']} s, score {result['score_s']} s; GPU kernels {gpu_s:.1f} s "
                   f"({100 * gpu_s / wall:.0f}% busy); {result}\n\n{text.getvalue()}")


def tutorial_eval(model, tok, rows, max_new_tokens: int) -> tuple[float, float]:
    """The tutorial's loop: a text-generation pipeline called once per prompt, stopping at <eos>/<end_of_turn>."""
    from transformers import pipeline

    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    stops = stop_token_ids(tok)
    sync()
    start = time.perf_counter()
    hits = 0
    for r in rows:
        prompt = tok.apply_chat_template([user_message(r.question, r.context)], tokenize=False, add_generation_prompt=True)
        out = pipe(prompt, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops, return_full_text=False)
        hits += score(r.context, r.sql, extract_sql(out[0]["generated_text"])).exec_match
    sync()
    return len(rows) / (time.perf_counter() - start), hits / len(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a merged gemsql model folder")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--baseline_rows", type=int, default=None, help="default: all --rows")
    p.add_argument("--batch_size", type=int, nargs="+", default=[64], help="one record per batch size")
    p.add_argument("--max_new_tokens", type=int, default=256, help="the tutorial's value")
    p.add_argument("--seed", type=int, default=1234, help="built-in rows not seen in training (other seed)")
    p.add_argument("--out", default="docs/benchmarks/eval.json")
    p.add_argument("--note", default="", help="kept with the records; a new note keeps the older records of the "
                   "same device, model and batch size instead of replacing them")
    p.add_argument("--cudnn_attention", nargs="+", choices=["on", "off"], default=["off"],
                   help="let SDPA use cuDNN's kernels (PyTorch's choice on Hopper) or not (gemsql's default in "
                   "decoding); one record per value and batch size (gemsql's ModelConfig.cudnn_attention)")
    p.add_argument("--execution_guided_beams", type=int, nargs="+", default=[0],
                   help="0 (greedy only) and/or N >= 2: answers that do not run are decoded again with N beams; one "
                   "record per value")
    p.add_argument("--execution_vote", action="store_true",
                   help="the --execution_guided_beams >= 2 records use the execution vote (beams for every answer, the "
                   "result most candidates agree on) instead of retrying only the answers that fail")
    p.add_argument("--profile", default=None, help="then profile one batch of the first batch size (and the first "
                   "--cudnn_attention value) into this file")
    args = p.parse_args()

    rows = builtin_rows(args.rows, seed=args.seed)
    model, tok = load_for_generation(args.model)
    generate_sql(model, tok, [(r.question, r.context) for r in rows[:8]], max_new_tokens=8, progress=False)  # warm-up
    gemsql_runs = {}
    for cudnn, beams, batch_size in itertools.product((v == "on" for v in args.cudnn_attention),
                                                      args.execution_guided_beams, args.batch_size):
        vote = args.execution_vote and beams >= 2
        label = f"gemsql, batch {batch_size}, cudnn_attention {cudnn}, execution_guided_beams {beams}, vote {vote}"
        try:
            gemsql_runs[batch_size, cudnn, beams] = run = gemsql_eval(model, tok, rows, batch_size,
                                                                      args.max_new_tokens, cudnn, beams, vote)
        except torch.OutOfMemoryError:  # larger batch sizes are a probe: one too large must not lose the rest
            print(f"{label}: out of memory", flush=True)
            torch.cuda.empty_cache()
            continue
        print(f"{label}: {run}", flush=True)
    base_rows = rows[: args.baseline_rows or args.rows]
    base_rate, base_acc = tutorial_eval(model, tok, base_rows, args.max_new_tokens)
    print(f"tutorial loop: {base_rate:.2f} examples/s, execution accuracy {base_acc:.3f}", flush=True)
    for (batch_size, cudnn, beams), run in gemsql_runs.items():
        rate = run["examples_per_s"]
        result = {
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)",
            "model": args.model, "examples": len(rows), "examples_per_s": round(rate, 3),
            "baseline_examples_per_s": round(base_rate, 3), "baseline_examples": len(base_rows),
            "speedup": round(rate / base_rate, 2), "exec_match": round(run["exec_match"], 4),
            "baseline_exec_match": round(base_acc, 4), "batch_size": batch_size, "cudnn_attention": cudnn,
            "execution_guided_beams": beams, "execution_vote": args.execution_vote and beams >= 2,
            "valid": round(run["valid"], 4), "guided_s": run["guided_s"],
            "candidates": run["candidates"],
            "max_new_tokens": args.max_new_tokens,
            "generate_s": run["generate_s"], "score_s": run["score_s"], "new_tokens": run["new_tokens"],
            "stop_reasons": run["stop_reasons"], "command": "python bench/eval_throughput.py " + " ".join(sys.argv[1:]),
            **({"note": args.note} if args.note else {}),
        }
        record(args.out, result, key=("device", "model", "batch_size", "cudnn_attention", "execution_guided_beams",
                                      "execution_vote", "note"))
    if args.profile:  # last, and one batch only: a profiled evaluation runs slower and must not lose the records
        profile_eval(model, tok, rows[: args.batch_size[0]], args.batch_size[0], args.max_new_tokens, Path(args.profile),
                     args.cudnn_attention[0] == "on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
