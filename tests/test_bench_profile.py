"""The benchmarks' step profiler (bench/train_throughput.py, used by bench/scaling.py --profile)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from train_throughput import profiler_callback  # noqa: E402


def test_the_profile_reports_its_window_when_training_runs_on_well_past_it(tmp_path):
    """Steps after the window must not replace or clear what it recorded: the H200's 4B profile came back empty
    because the profiler's schedule repeated and a new, empty cycle was under way when training ended."""
    out = tmp_path / "rank0.txt"
    callback = profiler_callback(warmup=2, steps=2, out=out)
    callback.on_train_begin(None, None, None)
    a = torch.randn(64, 64)
    for step in range(20):
        # only the window's steps (3 and 4, after 2 waiting and 1 warm-up) multiply matrices
        (a @ a) if step in (3, 4) else (a + a)
        callback.on_step_end(None, None, None)
    callback.on_train_end(None, None, None)
    text = out.read_text()
    assert text.startswith("wall per step:")
    cpu_table = text.split("top by CPU time:")[1]
    assert "aten::mm" in cpu_table and "aten::add" not in cpu_table
