"""Faults and bad input: kill -9 and resume, a full disk, and fuzzed rows, configs and flags.

The fuzz targets count their cases in CASES; bench/reliability.py runs them with more examples
(GEMSQL_FUZZ_EXAMPLES) and reports the counts in docs/reliability.json.
"""

from __future__ import annotations

import errno
import json
import os
import string
from collections import Counter

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemsql.cli import main
from gemsql.config import DataConfig, load_config
from gemsql.data.sources import load_rows
from gemsql.errors import GemsqlError

CASES: Counter = Counter()
UNHANDLED: list[str] = []
# Fields of 5,000 to 20,000 characters are drawn on purpose (long fields must be named, not crash anything); a run
# whose draws overran hypothesis' budget for input size too often failed its health check at random (data_too_large:
# 20 of 29 draws in one full-suite run), so that check is off, as too_slow is.
FUZZ = settings(max_examples=int(os.environ.get("GEMSQL_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def _user_error_or_ok(target: str, fn) -> None:
    """fn() either succeeds or raises GemsqlError with a message; anything else is an unhandled error."""
    CASES[target] += 1
    try:
        fn()
    except GemsqlError as e:
        assert str(e).strip()
    except SystemExit as e:  # argparse's own usage error: one line on stderr, exit code 2
        assert e.code == 2
    except Exception as e:
        UNHANDLED.append(f"{target}: {type(e).__name__}: {e}"[:300])
        raise


values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40),
                   st.text(min_size=5000, max_size=20000), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
rows = st.lists(st.dictionaries(st.sampled_from(["question", "context", "sql", "id", "domain", "other"]), values),
                min_size=0, max_size=6)


@FUZZ
@given(records=rows, raw=st.lists(st.binary(max_size=60), max_size=2), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_fuzz_dataset_rows(tmp_path_factory, records, raw, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"rows{suffix}"
    if suffix == ".jsonl":
        path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + b"\n".join(raw))
    else:
        import csv

        with path.open("w", newline="", encoding="utf-8", errors="surrogatepass") as f:
            w = csv.writer(f)
            w.writerow(["question", "context", "sql", "id"])
            for r in records:
                w.writerow([str(r.get(k, ""))[:100] for k in ("question", "context", "sql", "id")])
        path.write_bytes(path.read_bytes() + b"\n".join(raw))
    cfg = DataConfig(dataset=str(path), question_column="question", context_column="context", sql_column="sql")

    def load():
        try:
            loaded = load_rows(cfg, seed=0)
        except GemsqlError as e:
            assert str(path) in str(e)  # every data error names the file
            raise
        assert all(isinstance(r.question, str) and isinstance(r.sql, str) and r.question.strip() for r in loaded)

    _user_error_or_ok("dataset_rows", load)


config_keys = st.sampled_from(["lora_r", "learning_rate", "num_train_epochs", "max_length", "dataset", "quantization",
                               "packing", "metadata_columns", "test_size", "num_rows", "split_by",
                               "schema_sample_rows", "warmup_steps", "no_such_key", "max_new_tokens"])


@FUZZ
@given(config=st.dictionaries(config_keys, values, max_size=4), text=st.text(max_size=80))
def test_fuzz_yaml_configs(tmp_path_factory, config, text):
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    raw = folder / "raw.yaml"
    raw.write_text(text, encoding="utf-8", errors="surrogatepass")

    def load(p):
        try:
            load_config(p)
        except GemsqlError as e:
            assert str(p) in str(e)  # every config error names the file
            raise

    _user_error_or_ok("yaml_configs", lambda: load(path))
    _user_error_or_ok("yaml_configs", lambda: load(raw))


flags = st.lists(st.one_of(st.sampled_from(["--lora_r", "--learning_rate", "--max_length", "--quantization",
                                            "--packing", "--dataset", "--predictions", "--compare", "--config",
                                            "--num_rows", "--bogus"]),
                           st.text(alphabet=string.printable, max_size=12)), max_size=6)


@FUZZ
@given(args=flags)
def test_fuzz_cli_flags(tmp_path_factory, args, capsys):
    # `eval` parses every config flag and then fails fast without data: no model is loaded
    _user_error_or_ok("cli_flags", lambda: main(["eval", *args]))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err


def test_training_killed_at_a_random_moment_resumes_to_the_same_loss(tmp_path):
    """One kill -9 point here; bench/reliability.py runs five and more commands."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from reliability import kill_harness

    report = kill_harness(tmp_path, kills=1, seed=3)
    assert report["corrupt_outputs"] == 0, report["corrupt"]
    assert report["resumed_ok"] == 1, report["points"]


def test_a_full_disk_while_merging_leaves_the_previous_model_and_says_so(tmp_path, stop_trained, capsys, monkeypatch):
    import shutil

    from transformers import PreTrainedModel

    from gemsql.train import CONFIG_NAME

    merged, adapter = stop_trained
    run = tmp_path / "run"
    shutil.copytree(adapter, run / "adapter")
    shutil.copytree(merged, run / "merged")
    before = {p.name: p.read_bytes() for p in (run / "merged").iterdir()}
    config = run / "adapter" / CONFIG_NAME

    def disk_full(self, folder, *args, **kwargs):
        (folder / "model.safetensors").write_bytes(b"\0" * 1000)  # part of a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.safetensors"))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", disk_full)
    code = main(["merge", str(config), "--output_dir", str(run)])
    err = capsys.readouterr().err
    assert code == 4 and "disk full while writing" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in (run / "merged").iterdir()} == before  # the previous model, whole
    assert sorted(p.name for p in run.iterdir()) == ["adapter", "merged"]  # no temporary copy left behind


def test_a_killed_writer_leaves_a_recoverable_folder(tmp_path):
    from gemsql.files import atomic_dir, recover

    target = tmp_path / "merged"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    # what kill -9 between the two renames of a replacement leaves: the old copy aside, the new one unfinished
    os.replace(target, tmp_path / ".merged.old")
    (tmp_path / ".merged.x1.tmp").mkdir()
    recover(target)
    assert (target / "a").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["merged"]


def test_unreadable_dataset_file_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"sql_prompt": "q", "sql_context": "c", "sql": "SELECT 1"}\n')
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make it unreadable another way
        path.chmod(0o644)
        path.unlink()
        path.mkdir()
    with pytest.raises(GemsqlError) as e:
        load_rows(DataConfig(dataset=str(path)), seed=0)
    assert str(path) in str(e.value)


def test_duplicate_ids_are_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    row = {"id": 7, "sql_prompt": "q", "sql_context": "c", "sql": "SELECT 1"}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(GemsqlError, match=r"row 2, field 'id': duplicate id '7' \(first on row 1\)"):
        load_rows(DataConfig(dataset=str(path)), seed=0)


@pytest.mark.parametrize("finetuning, weights", [("lora", "adapter_model.safetensors"), ("full", "model.safetensors")])
def test_a_run_killed_after_its_last_checkpoint_ends_without_training_more(tmp_path, tiny_model, caplog, finetuning,
                                                                           weights):
    """Killed between the final checkpoint and the adapter (or whole model): the rerun writes it, no extra step."""
    import shutil

    from conftest import tiny_config

    from gemsql.data import prepare
    from gemsql.train import trained_dir, train

    cfg = tiny_config(tmp_path / "run", tiny_model, save_strategy="steps", save_steps=1, max_steps=2,
                      finetuning=finetuning)
    prepare(cfg)
    from safetensors.torch import load_file

    first = train(cfg)
    a = load_file(str(first.trained_dir / weights))
    shutil.rmtree(trained_dir(cfg))  # as if killed right after checkpoint-2 was sealed
    with caplog.at_level("INFO"):
        again = train(cfg)
    assert "training had finished" in caplog.text and again.steps == 2
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    b = load_file(str(again.trained_dir / weights))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
