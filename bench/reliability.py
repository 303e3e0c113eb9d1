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


def appeared(watch: Path, since: float) -> bool:
    """A path matching `watch` created after `since` (wall clock): a leftover of an earlier kill does not count."""
    for path in watch.parent.glob(watch.name):
        try:
            if path.stat().st_mtime >= since:
                return True
        except FileNotFoundError:
            pass
    return False


def timed(args: list[str], log: Path, watch: Path) -> tuple[float, float]:
    """Run to the end: (seconds until `watch` first matches something, total seconds). Startup (imports,
    model loading) takes most of a tiny run, so kills are aimed at the part after it."""
    started, wall = time.perf_counter(), time.time()
    proc = gemsql(*args, log=log)
    first = None
    while proc.poll() is None:
        if first is None and appeared(watch, wall):
            first = time.perf_counter() - started
        time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"gemsql {' '.join(args)} failed; see {log}")
    total = time.perf_counter() - started
    return (first if first is not None else 0.5 * total), total


def kill_at(args: list[str], at: float | None, log: Path, watch: Path | None = None) -> float:
    """Start the command and SIGKILL it `at` seconds in, or (at=None) the moment `watch` appears; the moment."""
    started, wall = time.perf_counter(), time.time()
    proc = gemsql(*args, log=log)
    while proc.poll() is None:
        now = time.perf_counter() - started
        if (at is not None and now >= at) or (at is None and appeared(watch, wall)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    return time.perf_counter() - started


def leftovers(output: Path) -> list[Path]:
    """Temporary copies beside an output folder or inside it, after a run that completed."""
    return [*output.parent.glob(f".{output.name}.*"), *output.glob(".*.tmp")]


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
    for metrics in (run / "eval").glob("*/metrics.json"):  # the eval folder's commit mark, written last
        try:
            examples = json.loads(metrics.read_text())["examples"]
            verdicts = (metrics.parent / "verdicts.jsonl").read_text().splitlines()
            if len(verdicts) != examples or not all((metrics.parent / f).is_file() for f in ("report.md", "report.html")):
                broken.append(f"{metrics.parent}: metrics.json beside a partial evaluation")
        except (OSError, ValueError, KeyError) as e:
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
    # training starts about when the first checkpoint appears; kills fall between then and the end
    train_begin, train_s = timed(["train", str(config), "--output_dir", str(ref)], log, ref / "checkpoints" / "checkpoint-*")
    reference = final_loss(ref)

    points, resumed_ok, broken = [], 0, []
    for k in range(kills):
        run = work / f"killed-{k}"
        finish("prepare", str(config), "--output_dir", str(run), log=log)
        at = kill_at(["train", str(config), "--output_dir", str(run)], rng.uniform(0.8 * train_begin, train_s), log)
        sealed = sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*") if (p / "gemsql_complete.json").is_file())
        broken += [f"killed-{k}: {b}" for b in broken_outputs(run)]
        finish("train", str(config), "--output_dir", str(run), log=log)
        broken += [f"killed-{k}: left after the rerun: {p.name}" for p in leftovers(run / "adapter")]
        loss = final_loss(run)
        ok = abs(loss - reference) <= tolerance * max(1.0, abs(reference))
        resumed_ok += ok
        points.append({"command": "train", "when": "random", "killed_after_s": round(at, 2), "sealed_checkpoints": sealed,
                       "final_loss": loss, "reference_loss": reference, "resumed_ok": ok})

    for command in ("merge", "eval"):
        args, output = [command, str(config), "--output_dir", str(ref)], ref / "merged"
        if command == "eval":
            finish("generate", str(config), "--output_dir", str(ref), "--input", str(ref / "data" / "test.jsonl"),
                   "--output", str(ref / "predictions.jsonl"), log=log)
            output = ref / "eval" / "killed"
            args = ["eval", str(config), "--output_dir", str(ref), "--predictions", str(ref / "predictions.jsonl"),
                    "--eval_output", str(output)]
        # the temporary copy of the first file written: the output is being written
        writing = output.parent / f".{output.name}.*.tmp" if command == "merge" else output / ".verdicts.jsonl.*.tmp"
        begin, seconds = timed(args, log, writing)
        # once at a random moment of the work after startup, once the moment the output starts being written
        for at, label in ((rng.uniform(0.8 * begin, seconds), "random"), (None, "while writing its output")):
            moment = kill_at(args, at, log, writing)
            broken += [f"{command}: {b}" for b in broken_outputs(ref)]
            finish(*args, log=log)  # and the rerun completes, tidying what the killed one left
            broken += [f"{command}: left after the rerun: {p.name}" for p in leftovers(output)]
            points.append({"command": command, "when": label, "killed_after_s": round(moment, 2)})
    return {"kill_points": len(points), "train_kills": kills, "resumed_ok": resumed_ok, "corrupt_outputs": len(broken),
            "corrupt": broken, "points": points, "train_seconds": round(train_s, 1),
            "train_first_checkpoint_s": round(train_begin, 1)}


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
