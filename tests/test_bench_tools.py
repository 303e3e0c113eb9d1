"""The benchmarks' own machinery: the step profiler (bench/train_throughput.py, used by bench/scaling.py --profile),
the scaling records of repeated launches, what compiled layers keep (bench/saved_activations.py) and whether their
recompute differentiates what their forward computed (bench/recompute_check.py)."""

import json
import sys
from pathlib import Path

import pytest
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


def _profile_window_end(rank: int, world: int, init: str, out: str, results) -> None:
    """One process of the test below: rank 1 fills its profiled window with many more operators than rank 0, so
    summarizing the window takes it longer; each rank notes when the window's last step has ended."""
    import time

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    callback = profiler_callback(warmup=1, steps=1, out=Path(out) / f"rank{rank}.txt")
    callback.on_train_begin(None, None, None)
    a = torch.ones(4)
    for step in range(4):
        for _ in range(5000 if rank == 1 and step == 2 else 10):  # step 2 is the window (1 waiting, 1 warm-up)
            a = a + 1
        callback.on_step_end(None, None, None)
        if step == 2:
            results[rank] = time.perf_counter()
    callback.on_train_end(None, None, None)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_profiled_ranks_leave_the_window_together(tmp_path):
    """Two processes whose windows take unequal time to summarize leave the window at the same moment, so the timing
    that starts after it does not count one rank's wait for the other (the H200 4B FSDP2 figure, tenth session)."""
    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(_profile_window_end, args=(2, f"file://{tmp_path / 'store'}", str(tmp_path), results), nprocs=2)
    assert (tmp_path / "rank0.txt").is_file() and (tmp_path / "rank1.txt").is_file()
    assert abs(results[0] - results[1]) < 0.25, dict(results)


def test_repeated_scaling_launches_are_recorded_as_their_median_with_every_launch_kept(tmp_path):
    from argparse import Namespace

    from scaling import write_records

    out = tmp_path / "scaling.json"
    a = Namespace(gpus=[1, 2], repeats=3, model="tiny", strategy="ddp", micro_batch=4, note="", out=str(out),
                  cpu_binding=False, accumulation=1)
    launch = {"peak_gib_per_gpu": 1.0, "loss": 2.0, "trained_tokens": 100, "steps": 9, "processes": 1}
    runs = {1: [{**launch, "tokens_per_s": v} for v in (100.0, 80.0, 120.0)],
            2: [{**launch, "tokens_per_s": v} for v in (150.0, 190.0)]}  # the third 2-GPU launch not done yet
    write_records(a, runs, threads=1)
    one, two = json.loads(out.read_text())
    assert (one["tokens_per_s"], one["tokens_per_s_runs"]) == (100.0, [100.0, 80.0, 120.0])
    assert (two["tokens_per_s"], two["speedup"]) == (170.0, 1.7)  # the medians' ratio, so far
    runs[2].append({"error": "exit 1: out of memory"})
    write_records(a, runs, threads=1)  # a failed launch makes its GPU count's record an error, in place
    one, two = json.loads(out.read_text())
    assert two["error"] == "exit 1: out of memory" and "speedup" not in two and one["tokens_per_s"] == 100.0


def test_cpu_binding_gives_each_process_whole_physical_cores_of_its_own():
    from scaling import core_share

    # 4 physical cores, hardware threads n and n + 4 on one core (as Linux numbers them)
    siblings = {cpu: f"{cpu % 4},{cpu % 4 + 4}" for cpu in range(8)}
    shares = [core_share(list(range(8)), siblings, rank, 2) for rank in range(2)]
    assert shares == [[0, 4, 1, 5], [2, 6, 3, 7]]
    assert sorted(core_share(list(range(8)), siblings, 0, 1)) == list(range(8))  # one process: the whole machine
    # fewer physical cores than processes: logical CPUs are split instead
    assert [core_share([0, 1], {0: "0-1", 1: "0-1"}, rank, 2) for rank in range(2)] == [[0], [1]]


def test_rescoring_scores_recorded_answers_with_todays_scorer(tmp_path, monkeypatch):
    """bench/rescore.py joins a run's verdicts with its split again, and `gemsql eval` scores them as it does now: an
    answer recorded as wrong for its column order counts."""
    import subprocess

    context = "CREATE TABLE t (id INT, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');"
    split = [{"id": "r1", "question": "ids and names", "context": context, "sql": "SELECT id, name FROM t"},
             {"id": "r2", "question": "names", "context": context, "sql": "SELECT name FROM t"}]
    verdicts = [{"id": "r1", "prediction": "SELECT name, id FROM t", "exec_match": False},
                {"id": "r2", "prediction": "SELECT id FROM t", "exec_match": False}]
    for name, rows in (("test.jsonl", split), ("verdicts.jsonl", verdicts)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    predictions = tmp_path / "again" / "predictions.jsonl"
    import rescore

    monkeypatch.setattr(sys, "argv", ["rescore.py", "--verdicts", str(tmp_path / "verdicts.jsonl"),
                                      "--test", str(tmp_path / "test.jsonl"), "--out", str(predictions)])
    assert rescore.main() == 0
    rc = subprocess.run([sys.executable, "-m", "gemsql", "eval", "--predictions", str(predictions),
                         "--eval_output", str(tmp_path / "again")], capture_output=True, text=True).returncode
    assert rc == 0
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["exec_match"] == 0.5

    (tmp_path / "verdicts.jsonl").write_text(json.dumps({"id": "r9", "prediction": "SELECT 1"}) + "\n")
    with pytest.raises(SystemExit, match="not rows of"):  # an answer of another split
        rescore.main()


def test_launcher_options_come_before_the_script_and_after_the_shipped_config():
    from scaling import launch_command

    cmd = launch_command("fsdp2", 2, ["--fsdp_reshard_after_forward", "false"])
    assert cmd[cmd.index("--config_file") + 1].endswith("configs/accelerate/fsdp2_qlora.yaml")
    assert cmd[-2:] == ["--fsdp_reshard_after_forward", "false"]  # after the config file: accelerate lets it override
    assert launch_command("ddp", 2, ["--max_restarts", "0"])[-2:] == ["--max_restarts", "0"]


def test_every_launch_trains_the_same_global_batch_with_or_without_more_accumulation(tmp_path):
    import yaml

    from scaling import run_config

    def launch(gpus, accumulation):
        config = run_config({"max_length": 512}, "model", tmp_path / f"g{gpus}a{accumulation}", gpus, 2, 4, 100_000,
                            accumulation)
        values = yaml.safe_load(config.read_text())
        return values["gradient_accumulation_steps"], values["per_device_train_batch_size"], values["max_steps"]

    assert [launch(g, 1)[0] for g in (1, 2)] == [2, 1]  # 8 sequences a step either way
    assert [launch(g, 2)[0] for g in (1, 2)] == [4, 2]  # 16 either way
    assert launch(1, 2)[1] == launch(2, 2)[1] == 4 and launch(1, 2)[2] == launch(2, 2)[2]


def test_the_token_clock_times_at_least_min_timed_steps():
    """The clock ends training at the token budget only once `min_timed` steps follow the warm-up: a budget reached
    two steps after a profiled window timed two steps (the twelfth session's 12B pair), too few to compare."""
    from types import SimpleNamespace

    from train_throughput import token_clock

    def steps_until_stop(min_timed: int) -> int:
        marks: list = []
        clock, state, control = token_clock(marks, tokens=1000, warmup=7, min_timed=min_timed), SimpleNamespace(), \
            SimpleNamespace(should_training_stop=False)
        for step in range(1, 50):
            state.num_input_tokens_seen = 200 * step  # the budget is reached at step 5, inside the warm-up
            clock.on_step_end(None, state, control)
            if control.should_training_stop:
                return step
        return -1

    assert steps_until_stop(2) == 9 and steps_until_stop(5) == 12  # timed: marks[6] .. marks[-1]


def test_a_slow_timed_step_shows_in_the_record():
    """The records give the timed steps' median and slowest duration: the twenty-second session's first 270M row ran
    at 0.72x its pair's tokens/s with nothing to say which steps were slow. Warm-up steps are not counted."""
    from train_throughput import step_seconds

    # (time, tokens) after each step: two warm-up steps (the first compiles), then steps of 0.1 s and one of 0.5 s
    marks = [(10.0, 100), (10.1, 200), (10.2, 300), (10.3, 400), (10.8, 500), (10.9, 600)]
    assert step_seconds(marks, warmup=2) == {"median": 0.1, "max": 0.5, "timed": 4}
    assert step_seconds(marks, warmup=4) == {"median": 0.3, "max": 0.5, "timed": 2}


def test_lever_rows_keep_their_meaning_when_the_default_moves():
    """The lever rows of bench/train_throughput.py keep the 4 x 512 eager base of their records and the tutorial its
    own learning rate and eager layers when gemsql's defaults move; "gemsql" alone follows the shipped default."""
    from train_throughput import CONFIGS

    from gemsql.config import load_config
    from gemsql.train import recompute_mode

    def resolved(name: str) -> tuple:
        cfg = load_config(None, **CONFIGS[name])
        t = cfg.train
        return (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.learning_rate, t.torch_compile,
                recompute_mode(cfg))

    # the rows' meaning in the records (docs/benchmarks/train_throughput.json), whatever the defaults are now; compiled
    # rows measured before selective recompute became the default keep none
    assert resolved("gemsql_4x512") == (4, 1, 2e-4, False, None)
    assert resolved("gemsql_mb16x1") == (16, 1, 2e-4, False, None)
    assert resolved("gemsql_compile") == (4, 1, 2e-4, True, None)
    assert resolved("gemsql_mb16x1_lr4e-4_compile") == (16, 1, 4e-4, True, None)
    assert resolved("tutorial") == (1, 4, 2e-4, False, "full")
    assert resolved("tutorial_mb16x1") == (16, 1, 2e-4, False, "full")
    assert resolved("gemsql_recompute")[-1] == "full" and resolved("gemsql_no_recompute")[-1] is None
    # the default until the twenty-first session, and the one since
    assert resolved("gemsql_recompute_selective")[-1] == "selective" and resolved("gemsql_lean")[-1] == "lean"
    for name in ("gemsql_no_dropout", "gemsql_no_turn_tokens", "gemsql_1x512"):
        assert load_config(None, **CONFIGS[name]).train.gradient_checkpointing is False  # as measured, wherever run
    assert CONFIGS["gemsql"] == {}  # the shipped default, which moves
    # the fused-optimizer lever: the default and the tutorial run fused AdamW, its row torch's unfused one
    assert load_config(None, **CONFIGS["tutorial"]).train.optim == load_config(None).train.optim == "adamw_torch_fused"
    assert load_config(None, **CONFIGS["gemsql_adamw_unfused"]).train.optim == "adamw_torch"


def test_saved_activations_counts_what_a_lever_frees(tmp_path, tiny_model):
    """bench/saved_activations.py on the tiny model: without LoRA dropout the forward keeps less for the backward
    (no dropped-out copy of each adapted layer's input), the same micro-batch either way, weights not counted; a
    config with recompute is refused, not miscounted."""
    from saved_activations import saved_bytes
    from train_throughput import CONFIGS

    model = str(tiny_model)
    small = dict(max_length=128, quantization="none")
    dropout = saved_bytes({**CONFIGS["gemsql_4x512"], **small}, model, tmp_path / "a", rows=60)
    none = saved_bytes({**CONFIGS["gemsql_4x512"], **small, "lora_dropout": 0.0}, model, tmp_path / "b", rows=60)
    assert dropout["batch_shape"] == none["batch_shape"] and dropout["batch_shape"][0] == 4
    assert 0 < none["saved_bytes"] < dropout["saved_bytes"] and none["tensors"] < dropout["tensors"]
    with pytest.raises(SystemExit, match="gradient_checkpointing"):
        saved_bytes({**CONFIGS["gemsql_4x512"], **small, "gradient_checkpointing": True}, model, tmp_path / "c", rows=60)


def test_compiled_layers_with_recompute_keep_little_more_than_their_inputs(tmp_path, tiny_model):
    """bench/saved_activations.py --compiled: a compiled layer that recomputes inside its compiled region (gemsql's
    torch_compile with gradient_checkpointing) hands autograd a third or less of what it keeps without recompute."""
    import torch._dynamo

    from saved_activations import saved_bytes
    from train_throughput import CONFIGS

    kept = {}
    for recompute in (False, True):
        torch._dynamo.reset()
        kept[recompute] = saved_bytes({**CONFIGS["gemsql_4x512"], "max_length": 128, "quantization": "none",
                                       "pad_to_multiple_of": 128, "gradient_checkpointing": recompute},
                                      str(tiny_model), tmp_path / str(recompute), rows=60, compiled=True)
    assert kept[True]["layers"] == "compiled" and kept[True]["batch_shape"] == kept[False]["batch_shape"]
    assert 0 < kept[True]["saved_bytes"] < kept[False]["saved_bytes"] / 3


def test_selective_recompute_keeps_between_full_recompute_and_none(tmp_path, tiny_model):
    """bench/saved_activations.py --compiled, QLoRA: recompute selective (the attention's output and every other
    4-bit matmul's output kept) hands autograd more than recompute full and less than no recompute, and recompute
    lean (selective without the MLP's gate) less than selective and more than full. One after the other in one
    process, as the tool runs its configs: the selective model compiled after the full one once ran the full one's
    graphs (TorchDynamo did not tell their policies apart) and kept exactly as much."""
    from saved_activations import saved_bytes
    from train_throughput import CONFIGS

    kept = {}
    for name in ("gemsql_no_recompute", "gemsql_recompute", "gemsql_recompute_selective", "gemsql_lean"):
        kept[name] = saved_bytes({**CONFIGS[name], "per_device_train_batch_size": 4, "max_length": 128,
                                  "quantization": "4bit", "pad_to_multiple_of": 128, "stop_token_training": "none",
                                  "torch_compile_mode": "default"},  # the CPU: no CUDA graphs
                                 str(tiny_model), tmp_path / name, rows=60, compiled=True)["saved_bytes"]
    assert (0 < kept["gemsql_recompute"] < kept["gemsql_lean"] < kept["gemsql_recompute_selective"]
            < kept["gemsql_no_recompute"]), kept


def test_the_memory_peak_is_replayed_from_the_allocators_events():
    """bench/memory_peak.py: the peak is the most bytes alive at once (a block freed before the next alloc does not
    add up; blocks 1, 3 and 4 alive together without block 2), what was allocated before recording counts in it, the
    allocation that reached it is named, and the blocks alive at the peak are grouped by the library line that asked
    for them, largest first."""
    from memory_peak import peak_composition

    def alloc(addr, size, filename, line=1):
        frames = [{"filename": "/x/torch/autograd/function.py", "line": 9, "name": "apply"},
                  {"filename": f"/x/site-packages/{filename}", "line": line, "name": "f"}]
        return {"action": "alloc", "addr": addr, "size": size, "frames": frames}

    trace = [alloc(1, 100, "peft/layer.py"), alloc(2, 300, "trl/kernels/chunked_logprob.py", 5),
             {"action": "free_requested", "addr": 2, "size": 300},
             {"action": "free_completed", "addr": 2, "size": 300},
             alloc(3, 50, "peft/layer.py"), alloc(4, 120, "peft/layer.py"),
             {"action": "free_requested", "addr": 1, "size": 100}, alloc(5, 10, "trl/x.py")]
    peak, reached_by, rows = peak_composition(trace, baseline=1000)
    assert peak == 1000 + 100 + 300  # blocks 1 and 2 together, not 1 + 2 + 3 + 4
    assert reached_by == "trl/kernels/chunked_logprob.py:5 f"  # block 2's allocation set the peak
    assert rows[0] == ("(allocated before recording: weights, adapter, optimizer state so far)", 1000, 0)
    assert rows[1:] == [("trl/kernels/chunked_logprob.py:5 f", 300, 1), ("peft/layer.py:1 f", 100, 1)]
    without_2 = [e for e in trace if e["addr"] != 2]
    assert peak_composition(without_2, baseline=0) == (270, "peft/layer.py:1 f", [("peft/layer.py:1 f", 270, 3)])


def test_compiled_layers_recompute_with_the_forwards_dropout_masks(tmp_path, tiny_model):
    """With torch_compile and gradient_checkpointing each compiled layer recomputes its forward in the backward
    (inside its compiled region: what it keeps, test_compiled_layers_with_recompute_keep_little_more_than_their_inputs
    counts), and the recompute uses the forward's dropout masks: the gradient's directional derivative matches finite
    differences of the loss with LoRA dropout at 0.5 (an eager recompute drawing new masks gave 3.6 against 5.8). The
    check is bench/recompute_check.py's, which runs it on a GPU too (ratio 0.99995 on the H200)."""
    import torch._dynamo

    from conftest import tiny_config
    from recompute_check import directional_check

    from gemsql.data import prepare
    from gemsql.model import decoder_layers
    from gemsql.train import setup

    cfg = tiny_config(tmp_path / "run", tiny_model, torch_compile=True, gradient_checkpointing=True,
                      dtype="float32", lora_dropout=0.5, pad_to_multiple_of=256, stop_token_training="none")
    prepare(cfg)
    torch._dynamo.reset()
    trainer, _ = setup(cfg)
    model = trainer.model
    assert all(layer.forward.__name__ == "forward_recomputed" for layer in decoder_layers(model))
    assert not model.get_base_model().is_activation_checkpointing  # not transformers' checkpointing around them
    slope, norm = directional_check(trainer, next(iter(trainer.get_train_dataloader())))
    assert slope == pytest.approx(norm, rel=2e-2)


def test_host_sync_counts_say_who_made_the_cpu_wait_in_the_window_only(tmp_path):
    """bench/train_throughput.py --syncs: the calls that make the CPU wait for a GPU are counted by caller, per step,
    over the window's steps only (after the warm-up, until its last step ends); a run that ends inside the window
    still writes what it counted. On the CPU the Python calls that would synchronise on a GPU are what is counted."""
    from types import SimpleNamespace

    from host_syncs import sync_callback

    def step_work(n: int):
        t = torch.ones(3)
        for _ in range(n):
            t.sum().item()
        return bool(t.all())

    out = tmp_path / "syncs.txt"
    callback = sync_callback(warmup=2, steps=2, out=out)
    for step in range(6):
        state = SimpleNamespace(global_step=step)
        callback.on_step_begin(None, state, None)
        step_work(5 if step in (2, 3) else 50)  # the window: steps 3 and 4 (global_step 2 and 3 as they begin)
        callback.on_step_end(None, SimpleNamespace(global_step=step + 1), None)
    callback.on_train_end(None, SimpleNamespace(global_step=6), None)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("host syncs per step: 6.0 over 2 steps")
    rows = {line.split()[1]: (float(line.split()[0]), line) for line in lines[2:]}
    assert rows["item"][0] == 5.0 and "step_work" in rows["item"][1]
    assert rows["__bool__"][0] == 1.0 and "step_work" in rows["__bool__"][1]

    short = tmp_path / "short.txt"
    callback = sync_callback(warmup=1, steps=5, out=short)
    for step in range(3):  # training stops two steps into the window
        callback.on_step_begin(None, SimpleNamespace(global_step=step), None)
        step_work(2)
        callback.on_step_end(None, SimpleNamespace(global_step=step + 1), None)
    callback.on_train_end(None, SimpleNamespace(global_step=3), None)
    assert short.read_text().startswith("host syncs per step: 3.0 over 2 steps")
    counted = sum(callback.counter.seen.values())
    step_work(3)  # the window closed: nothing more is counted
    assert sum(callback.counter.seen.values()) == counted == 6


def test_a_failing_held_out_loss_keeps_the_measured_speed_in_the_record(tmp_path, tiny_model, monkeypatch):
    """The held-out loss is measured after the timing, on the compiled layers as trained (CUDA graphs included): if
    it fails, the record keeps the tokens/s already measured, with the loss's error beside a null loss."""
    import train_throughput

    def fails(*args, **kwargs):
        raise RuntimeError("the held-out pass failed")

    monkeypatch.setattr(train_throughput, "answer_loss", fails)
    out = tmp_path / "records.json"
    monkeypatch.setattr(sys, "argv", [
        "train_throughput.py", "--model", str(tiny_model), "--configs", "gemsql", "--tokens", "1500", "--warmup", "2",
        "--rows", "120", "--eval_rows", "8", "--set", "max_length=128", "per_device_train_batch_size=2",
        "quantization=none", "--work", str(tmp_path / "work"), "--out", str(out)])
    assert train_throughput.main() == 0
    [r] = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert r["peak_gib"] is None  # no GPU here
    assert r["config"] == "gemsql" and r["tokens_per_s"] > 0 and r["trained_tokens"] >= 1500
    assert r["step_s"]["timed"] == r["steps"] - 2 and 0 < r["step_s"]["median"] <= r["step_s"]["max"]
    assert r["loss"] is None and r["loss_error"] == "RuntimeError: the held-out pass failed"
    assert "error" not in r


def test_a_config_run_twice_in_one_run_keeps_both_records(tmp_path):
    """bench/train_throughput.py: the records are keyed by model, config and note, so a config named twice in one
    --configs list gets "; run 2" on its second note and both records stay in the file."""
    from results_file import record
    from train_throughput import run_notes

    configs = ["gemsql", "gemsql_adamw_unfused", "gemsql", "gemsql_adamw_unfused", "gemsql"]
    notes = run_notes(configs, "CPU")
    assert notes == ["CPU", "CPU", "CPU; run 2", "CPU; run 2", "CPU; run 3"]
    assert run_notes(["gemsql", "gemsql"], "") == ["", "run 2"]
    out = tmp_path / "records.json"
    for name, note in zip(configs, notes):
        record(out, {"model": "m", "config": name, "note": note}, key=("model", "config", "note"))
    assert len(json.loads(out.read_text())) == len(configs)

