"""bench/spider_results.py: the Spider runs of the GPU scripts collected into one JSON per held-out split."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def _run_folder(work: Path, name: str, groups: list[str], rows: int, ex: float, as_run: dict | None = None,
                **settings) -> None:
    """What `gemsql run` leaves that the collector reads: the split's stats, the evaluation, the trained config (and
    with `as_run`, train_metrics.json's record of the settings the machine decided)."""
    run = work / name
    (run / "data").mkdir(parents=True)
    (run / "data" / "stats.json").write_text(json.dumps(
        {"test_groups": groups, "test": {"rows": rows}, "train": {"rows": 90, "tokens": 9000}}))
    (run / "report.json").write_text("{}")
    (run / "eval" / "finetuned").mkdir(parents=True)
    (run / "eval" / "finetuned" / "metrics.json").write_text(json.dumps(
        {"exec_match": ex, "exact_match": ex / 2, "valid": 0.9, "examples": rows, "replaced": 3, "repaired": 1,
         "greedy": {"exec_match": ex - 0.1, "exact_match": 0.1, "valid": 0.5}}))
    (run / "adapter").mkdir()
    (run / "adapter" / "gemsql_config.yaml").write_text(yaml.safe_dump({"num_train_epochs": 3, **settings}))
    if as_run is not None:
        (run / "adapter" / "train_metrics.json").write_text(json.dumps({"global_step": 9, "as_run": as_run}))


def _collect(work: Path, out: Path, *variants: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / "bench" / "spider_results.py"), "--work", str(work), "--merge",
                           "--variants", *variants, "--out", str(out), *extra], capture_output=True, text=True, env=env)


def test_a_run_of_another_split_starts_its_own_file_and_is_refused_by_another(tmp_path):
    work, out = tmp_path / "work", tmp_path / "seed7"
    _run_folder(work, "spider-seed7", ["db_b", "db_a"], 120, 0.4, seed=7, schema_repair=True,
                recompute="lean", save_steps=50)
    _run_folder(work, "spider-other", ["db_c"], 80, 0.3, seed=42)
    assert _collect(work, out, "spider-seed7").returncode == 0
    result = json.loads((out / "spider_heldout.json").read_text())
    assert (result["databases"], result["rows"], sorted(result["test_databases"])) == (2, 120, ["db_a", "db_b"])
    run = result["variants"]["spider-seed7"]
    assert (run["ex"], run["greedy"]["ex"], run["replaced"], run["repaired"]) == (0.4, 0.4 - 0.1, 3, 1)
    # the settings that tell runs apart (recompute among them), not the whole config
    assert run["settings"] == {"num_train_epochs": 3, "seed": 7, "schema_repair": True, "recompute": "lean"}
    assert "base" not in result and (out / "spider_heldout.svg").read_text().startswith("<svg")
    # the same merge again adds no second copy of its command; a run of another split is refused, the file kept
    assert _collect(work, out, "spider-seed7").returncode == 0
    assert len(json.loads((out / "spider_heldout.json").read_text())["commands"]) == 1
    refused = _collect(work, out, "spider-other")
    assert refused.returncode != 0 and "not the held-out split of" in refused.stderr
    assert json.loads((out / "spider_heldout.json").read_text()) == result


def test_the_shipped_run_is_recorded_under_its_own_key_and_must_be_one_of_the_variants(tmp_path):
    work, out = tmp_path / "work", tmp_path / "results"
    _run_folder(work, "spider-a", ["db_a"], 100, 0.38, schema_shuffle=False)
    _run_folder(work, "spider-b", ["db_a"], 100, 0.42, schema_shuffle=True)
    assert _collect(work, out, "spider-a", "spider-b", extra=("--shipped", "spider-b")).returncode == 0
    result = json.loads((out / "spider_heldout.json").read_text())
    assert result["shipped"] == {"run": "spider-b", **result["variants"]["spider-b"]}
    assert result["shipped"]["ex"] == 0.42 and result["shipped"]["settings"]["schema_shuffle"] is True
    refused = _collect(work, out, "spider-a", extra=("--shipped", "spider-b"))
    assert refused.returncode != 0 and "--shipped names one of --variants" in refused.stderr
    assert json.loads((out / "spider_heldout.json").read_text()) == result


def test_settings_left_to_the_machine_are_recorded_as_the_run_decided_them(tmp_path):
    work, out = tmp_path / "work", tmp_path / "results"
    decided = {"torch_compile": True, "torch_compile_mode": "reduce-overhead", "recompute": "lean"}
    _run_folder(work, "spider-shipped", ["db_a"], 100, 0.4, as_run=decided, recompute=None, torch_compile_mode=None,
                gradient_checkpointing=None, schema_repair=True)
    # a run from before train_metrics.json said: its nulls stay
    _run_folder(work, "spider-older", ["db_a"], 100, 0.4, recompute=None, torch_compile_mode=None)
    # a setting the config names is what ran, whatever else is recorded
    _run_folder(work, "spider-asked", ["db_a"], 100, 0.4, as_run=decided, recompute="full")
    assert _collect(work, out, "spider-shipped", "spider-older", "spider-asked").returncode == 0
    variants = json.loads((out / "spider_heldout.json").read_text())["variants"]
    assert variants["spider-shipped"]["settings"] == {
        "num_train_epochs": 3, "recompute": "lean", "torch_compile_mode": "reduce-overhead",
        "gradient_checkpointing": None, "schema_repair": True}
    assert variants["spider-older"]["settings"] == {"num_train_epochs": 3, "recompute": None,
                                                    "torch_compile_mode": None}
    assert variants["spider-asked"]["settings"]["recompute"] == "full"
