"""Reliability under faults: kill -9 at random points of training, merge and eval, then bad-input fuzzing.

Training (the tiny test model on the CPU, checkpoints every few steps) is killed with SIGKILL at random
moments; after each kill the run folder must hold no half-written output (every checkpoint is either
sealed and intact or refused by `last_checkpoint`; adapter/data folders complete or absent), and the
same `gemsql train` command must resume and end at the uninterrupted run's final loss. Merge and eval
are killed the same way; their output folders must be complete or absent, and a rerun must finish.
Then the fuzz targets of tests/test_reliability.py run with more examples.

    python bench/reliability.py --kills 5 --fuzz_examples 300     # writes docs/reliability.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TRAIN = dict(dataset="builtin", num_rows=60, test_size=8, quantization="none", max_length=256, max_steps=24,
             per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=5e-3, logging_steps=1,
             save_strategy="steps", save_steps=3, report_to="none", max_new_tokens=16, generation_batch_size=8)


def gemsql(*args: str, log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "gemsql", *args], stdout=out, stderr=subprocess.STDOUT,
                                # one thread: CPU kernels then reduce in one order, so runs are repeatable
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                     "OMP_NUM_THREADS": "1"})


def finish(*args: str, log: Path) -> None:
    rc = gemsql(*args, log=log).wait()
    if rc != 0:
        raise RuntimeError(f"gemsql {' '.join(args)} failed ({rc}); see {log}")


def kill_at_random(args: list[str], seconds: float, rng: random.Random, log: Path) -> float:
    """Start the command and SIGKILL it at a random moment of a run that takes `seconds`; the moment used."""
    at = rng.uniform(0.1, 0.95) * seconds
    proc = gemsql(*args, log=log)
    time.sleep(at)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return at


def final_loss(run: Path) -> float:
    """The loss logged at the last optimizer step, from the final checkpoint's trainer state."""
    last = max((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h][-1]


def broken_outputs(run: Path) -> list[str]:
    """What a reader of the run folder would find half-written (a checkpoint is fine if refused)."""
    from gemsql.train import checkpoint_problem

    broken = []
    for ckpt in (run / "checkpoints").glob("checkpoint-*"):
        problem = checkpoint_problem(ckpt)
        if problem is not None and "not sealed" not in problem:
            broken.append(f"{ckpt.name}: {problem}")  # sealed but damaged: the seal would have lied
    adapter = run / "adapter"
    if adapter.exists() and not all((adapter / f).is_file() for f in
                                    ("adapter_model.safetensors", "adapter_config.json", "gemsql_config.yaml")):
        broken.append("adapter: incomplete")
    merged = run / "merged"
    if merged.exists():
        try:
            from safetensors import safe_open

            with safe_open(str(merged / "model.safetensors"), "pt") as f:
                list(f.keys())
            json.loads((merged / "config.json").read_text())
        except Exception as e:
            broken.append(f"merged: {type(e).__name__}: {e}")
    for metrics in (run / "eval").glob("*/metrics.json"):
        try:
            json.loads(metrics.read_text())
        except ValueError as e:
            broken.append(f"{metrics}: {e}")
    return broken


def kill_harness(work: Path, kills: int, seed: int = 0, tolerance: float = 1e-3) -> dict:
    """Kill -9 training `kills` times (one run each), merge and eval twice each; the figures for the report."""
    from tiny import make_tiny_model

    rng = random.Random(seed)
    model = make_tiny_model(work / "tiny")
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({**TRAIN, "model_name_or_path": str(model)}))
    log = work / "log.txt"

    ref = work / "reference"
    finish("prepare", str(config), "--output_dir", str(ref), log=log)
    started = time.perf_counter()
    finish("train", str(config), "--output_dir", str(ref), log=log)
    train_s = time.perf_counter() - started
    reference = final_loss(ref)

    points, resumed_ok, broken = [], 0, []
    for k in range(kills):
        run = work / f"killed-{k}"
        finish("prepare", str(config), "--output_dir", str(run), log=log)
        at = kill_at_random(["train", str(config), "--output_dir", str(run)], train_s, rng, log)
        sealed = sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*") if (p / "gemsql_complete.json").is_file())
        broken += [f"killed-{k}: {b}" for b in broken_outputs(run)]
        finish("train", str(config), "--output_dir", str(run), log=log)
        loss = final_loss(run)
        ok = abs(loss - reference) <= tolerance * max(1.0, abs(reference))
        resumed_ok += ok
        points.append({"command": "train", "killed_after_s": round(at, 2), "sealed_checkpoints": sealed,
                       "final_loss": loss, "reference_loss": reference, "resumed_ok": ok})

    for command, extra in (("merge", []), ("eval", None)):
        args = [command, str(config), "--output_dir", str(ref)]
        if command == "eval":
            finish("generate", str(config), "--output_dir", str(ref), "--input", str(ref / "data" / "test.jsonl"),
                   "--question_column", "question", "--context_column", "context",  # the prepared file's names
                   "--output", str(ref / "predictions.jsonl"), log=log)
            args = ["eval", str(config), "--output_dir", str(ref), "--predictions", str(ref / "predictions.jsonl"),
                    "--eval_output", str(ref / "eval" / "killed")]
        started = time.perf_counter()
        finish(*args, log=log)
        seconds = time.perf_counter() - started
        for _ in range(2):
            at = kill_at_random(args, seconds, rng, log)
            broken += [f"{command}: {b}" for b in broken_outputs(ref)]
            finish(*args, log=log)  # and the rerun completes
            points.append({"command": command, "killed_after_s": round(at, 2)})
    return {"kill_points": len(points), "train_kills": kills, "resumed_ok": resumed_ok, "corrupt_outputs": len(broken),
            "corrupt": broken, "points": points, "train_seconds": round(train_s, 1)}


def fuzz(examples: int) -> dict:
    """Run the fuzz targets of tests/test_reliability.py with `examples` cases each."""
    import pytest

    os.environ["GEMSQL_FUZZ_EXAMPLES"] = str(examples)  # read when the test module is imported
    import test_reliability

    rc = pytest.main(["-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_reliability.py"), "-k", "fuzz"])
    return {"fuzz_cases": sum(test_reliability.CASES.values()), "fuzz_cases_by_target": dict(test_reliability.CASES),
            "unhandled_errors": len(test_reliability.UNHANDLED), "unhandled": test_reliability.UNHANDLED[:20],
            "fuzz_exit_code": int(rc)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=5, help="training runs killed at a random moment")
    p.add_argument("--fuzz_examples", type=int, default=300, help="cases per fuzz target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/reliability.json")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gemsql-reliability-"))
    report = {**kill_harness(work, a.kills, a.seed), **fuzz(a.fuzz_examples),
              "command": "python bench/reliability.py " + " ".join(sys.argv[1:])}
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("kill_points", "resumed_ok", "corrupt_outputs", "fuzz_cases",
                                             "unhandled_errors")}))
    ok = report["corrupt_outputs"] == 0 and report["unhandled_errors"] == 0 and report["resumed_ok"] == a.kills
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
