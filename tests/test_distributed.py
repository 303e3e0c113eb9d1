"""`gemsql train` under torchrun on this CPU (gloo): 2 processes match 1, two "nodes" on loopback, N -> M resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _env() -> dict:
    # one thread per process: two processes share this machine's two cores, and results stay repeatable
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _config(tmp_path: Path, tiny_model: Path, name: str, **overrides) -> Path:
    values = dict(model_name_or_path=str(tiny_model), output_dir=str(tmp_path / name), dataset="builtin", num_rows=72,
                  test_size=8, quantization="none", max_length=256, max_steps=6, per_device_train_batch_size=2,
                  learning_rate=5e-3, lora_dropout=0.0, logging_steps=1, save_strategy="steps", save_steps=3,
                  report_to="none")
    values.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _run(cmd: list[str], log: Path, timeout: int = 600) -> None:
    with log.open("a") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), timeout=timeout).returncode
    assert rc == 0, log.read_text()[-4000:]


def _losses(run: Path) -> list[float]:
    last = max((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return [h["loss"] for h in json.loads((last / "trainer_state.json").read_text())["log_history"] if "loss" in h]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_model):
    """The tiny model trained by 2 processes of 2 sequences each, and by 1 process of 4: (tmp, run2, run1)."""
    tmp = tmp_path_factory.mktemp("ddp")
    log = tmp / "log.txt"
    two = _config(tmp, tiny_model, "two")
    one = _config(tmp, tiny_model, "one", per_device_train_batch_size=4)
    _run([sys.executable, "-m", "gemsql", "prepare", str(two)], log)
    _run([sys.executable, "-m", "gemsql", "prepare", str(one)], log)
    _run([*TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "gemsql", "train", str(two)], log)
    _run([sys.executable, "-m", "gemsql", "train", str(one)], log)
    return tmp, tmp / "two", tmp / "one", log


def test_two_processes_reach_the_loss_of_one_with_the_same_global_batch(two_process_run):
    _, two, one, log = two_process_run
    a, b = _losses(two), _losses(one)
    assert len(a) == len(b) == 6
    assert abs(a[0] - b[0]) < 1e-3 * b[0], (a, b)  # the same first global batch, split over two processes
    assert abs(a[-1] - b[-1]) < 0.02 * b[-1], (a, b)
    # only rank 0 wrote the adapter and printed the result
    assert (two / "adapter" / "adapter_model.safetensors").is_file()
    assert log.read_text().count(f"adapter: {two / 'adapter'}") == 1


def test_a_checkpoint_from_two_processes_resumes_on_one(two_process_run, tiny_model):
    tmp, two, _, log = two_process_run
    more = _config(tmp, tiny_model, "two", max_steps=9)  # the same run folder, three more steps
    _run([sys.executable, "-m", "gemsql", "train", str(more)], log)
    assert "resuming from" in log.read_text() and len(_losses(two)) == 9
    state = json.loads((two / "checkpoints" / "checkpoint-9" / "trainer_state.json").read_text())
    assert state["global_step"] == 9


def test_two_nodes_on_loopback(tmp_path, tiny_model):
    config = _config(tmp_path, tiny_model, "nodes", max_steps=3, save_steps=3)
    log = tmp_path / "log.txt"
    _run([sys.executable, "-m", "gemsql", "prepare", str(config)], log)
    port = str(free_port())
    nodes = [
        subprocess.Popen([*TORCHRUN, "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                          "--master_addr", "127.0.0.1", "--master_port", port, "-m", "gemsql", "train", str(config)],
                         stdout=(tmp_path / f"node{rank}.log").open("w"), stderr=subprocess.STDOUT, env=_env())
        for rank in (0, 1)
    ]
    codes = [p.wait(timeout=600) for p in nodes]
    assert codes == [0, 0], [(tmp_path / f"node{r}.log").read_text()[-3000:] for r in (0, 1)]
    assert len(_losses(tmp_path / "nodes")) == 3 and (tmp_path / "nodes" / "adapter").is_dir()


def test_the_whole_pipeline_under_torchrun_reports_once(tmp_path, tiny_model):
    """`gemsql run` with 2 processes: both train, rank 0 alone merges, evaluates and prints the report."""
    config = _config(tmp_path, tiny_model, "run", max_steps=2, save_steps=2, max_new_tokens=8, eval_rows=4,
                     generation_batch_size=4)
    log = tmp_path / "log.txt"
    _run([*TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "gemsql", "run", str(config)],
         log)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["rows_test"] == 4 and set(report) >= {"base", "finetuned"}
    text = log.read_text()
    # no duplicated output: one "prepared" log line, one final "report: RUN/report.json (N minutes)" line
    assert text.count("report.json (") == 1 and text.count("prepared ") == 1


def test_deepspeed_zero3_two_processes_reach_the_loss_of_one(tmp_path, tiny_model):
    """The shipped ZeRO-3 launch config (gloo on this CPU): 2 sharded processes of 2 sequences each train like
    1 process of 4, rank 0 alone writes the adapter, and the adapter holds the full (gathered) LoRA weights.

    PEFT's trainable-token rows need CUDA under ZeRO-3, so both runs train without them here."""
    pytest.importorskip("deepspeed")
    log = tmp_path / "log.txt"
    shared = dict(stop_token_training="none", max_steps=4, save_steps=4)
    zero3 = _config(tmp_path, tiny_model, "zero3", **shared)
    one = _config(tmp_path, tiny_model, "one", per_device_train_batch_size=4, **shared)
    for config in (zero3, one):
        _run([sys.executable, "-m", "gemsql", "prepare", str(config)], log)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(Path(__file__).parents[1] / "configs" / "accelerate" / "zero3_qlora.yaml"), "--num_processes", "2",
              "--main_process_port", str(free_port())]
    _run([*launch, "-m", "gemsql", "train", str(zero3)], log)
    _run([sys.executable, "-m", "gemsql", "train", str(one)], log)
    a, b = _losses(tmp_path / "zero3"), _losses(tmp_path / "one")
    assert len(a) == len(b) == 4
    assert abs(a[0] - b[0]) < 1e-3 * b[0] and abs(a[-1] - b[-1]) < 0.02 * b[-1], (a, b)
    assert log.read_text().count(f"adapter: {tmp_path / 'zero3' / 'adapter'}") == 1

    from safetensors.torch import load_file

    sharded = load_file(tmp_path / "zero3" / "adapter" / "adapter_model.safetensors")
    whole = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    assert sharded.keys() == whole.keys()
    assert all(sharded[k].shape == whole[k].shape for k in whole)  # gathered, not rank 0's shard

    # the default stop_token_training (trainable <end_of_turn> rows) cannot run under ZeRO-3: said before loading
    default = _config(tmp_path, tiny_model, "zero3", **{**shared, "stop_token_training": "turn_tokens"})
    with (tmp_path / "refused.txt").open("w") as out:
        rc = subprocess.run([*launch[:-1], str(free_port()), "-m", "gemsql", "train", str(default)], stdout=out,
                            stderr=subprocess.STDOUT, env=_env(), timeout=600).returncode
    assert rc != 0 and "field 'stop_token_training': 'turn_tokens' does not run under DeepSpeed ZeRO-3" in (
        tmp_path / "refused.txt").read_text()


def test_fsdp2_trains_the_qlora_model_like_the_whole_model(tmp_path, tiny_model):
    """FSDP2 as configs/accelerate/fsdp2_qlora.yaml launches it. accelerate refuses FSDP on a CPU, so 2 gloo processes
    build gemsql's trainer (4-bit base, LoRA, turn-token rows on the embedding tied to the head, the adapter cast to
    bf16 by TRL) once as is and once with the variables that launch sets, where gemsql shards the model itself:
    the same loss, gradients and weights after one optimizer step, the 4-bit base split between the processes, and
    the whole adapter gathered for rank 0 to save; with compiled layers, recomputing inside them or not, to within
    bf16 rounding."""
    config = _config(tmp_path, tiny_model, "fsdp2", quantization="4bit", num_rows=40, save_strategy="no")
    result = tmp_path / "fsdp2.json"
    _run([sys.executable, "-m", "gemsql", "prepare", str(config)], tmp_path / "log.txt")
    _run([*TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()),
          str(Path(__file__).with_name("fsdp2_worker.py")), str(config), str(result)], tmp_path / "log.txt")
    results = json.loads(result.read_text())
    compiled = (results["compiled"], results["compiled_recompute"])
    for units, r in zip((2, 1, 2, 2), (results["per_layer"], results["two_layers_a_unit"], *compiled)):
        assert (r["fsdp_layers"], r["units"]) == (2, units)  # fsdp_layers_per_unit 1, 2, 1, 1
        is_compiled = any(r is c for c in compiled)  # identity: an equal dict must not pass as compiled
        if is_compiled:  # fused kernels round bf16 differently: close, not equal
            assert r["sharded_loss"] == pytest.approx(r["whole_loss"], rel=1e-3)
            assert r["grads_worst"] < 0.05  # (Adam's first step takes their signs: near-zero ones may flip)
        else:
            assert r["sharded_loss"] == pytest.approx(r["whole_loss"], rel=1e-5)
            assert r["grads_differing"] == [] and r["steps_differing"] == []
        assert r["adapter_keys_equal"]  # gathered on rank 0, not its shard
        assert r["adapter_differing"] == [] or is_compiled
        assert len(r["trainable"]) == 29 and r["adapter_dtypes"] == ["torch.bfloat16"]  # 2 layers x 7 LoRA + rows
        assert r["base_weight"] == "DTensor" and r["base_local_rows"] * 2 == r["base_rows"]
    assert results["two_layers_a_unit"]["compiled_layers"] == results["two_layers_a_unit"]["graphs"] == 0
    assert all(r["compiled_layers"] == 2 and r["graphs"] >= 1 for r in compiled)
    # compiled 4-bit layers recompute leanly unless told not to
    assert [r["recompute"] for r in compiled] == [None, "lean"]
    launch = yaml.safe_load((Path(__file__).parents[1] / "configs/accelerate/fsdp2_qlora.yaml").read_text())
    assert launch["fsdp_config"]["fsdp_version"] == 2 and launch["fsdp_config"]["fsdp_auto_wrap_policy"] == "NO_WRAP"


def test_fsdp2_units_group_neighbouring_layers_of_one_class_only():
    from gemsql.distributed import layer_units

    class Text:
        pass

    class Vision:
        pass

    layers = [Text(), Text(), Text(), Vision(), Vision(), Text()]
    assert [len(u) for u in layer_units(layers, 1)] == [1] * 6
    assert [[type(m).__name__ for m in u] for u in layer_units(layers, 2)] == [
        ["Text", "Text"], ["Text"], ["Vision", "Vision"], ["Text"]]
    assert [len(u) for u in layer_units(layers, 8)] == [3, 2, 1]


def test_scaling_benchmark_compares_one_process_with_two_at_the_same_global_batch(tmp_path):
    """bench/scaling.py (the two-GPU issue's benchmark) on this CPU: one launch per process count, the 1-process run
    accumulating two micro-batches per step, so both train the same steps over the same tokens to the same loss. As
    DDP trains on a GPU by default: QLoRA, layers compiled, recomputing leanly."""
    out = tmp_path / "scaling.json"
    bench = Path(__file__).parents[1] / "bench"
    _run([sys.executable, str(bench / "scaling.py"), "--model", "tiny", "--strategy", "ddp", "--gpus", "1", "2",
          "--tokens", "3000", "--set", "lora_dropout=0.0", "learning_rate=5e-3", "quantization=4bit",
          "torch_compile=true", "--out", str(out),
          "--work", str(tmp_path / "work"), "--profile", "--cpu_binding"], tmp_path / "log.txt")
    one, two = json.loads(out.read_text())
    # --cpu_binding: every process ran on its own share of the cores, the 1-process launch on one rank's share
    cpus = len(os.sched_getaffinity(0))
    assert one["cpus_per_process"] == [max(1, cpus // 2)] and two["cpus_per_process"] == [max(1, cpus // 2)] * 2
    # gemsql's DDP defaults for a text model reach DDP (torchrun wraps one CPU process too), and DDP found no
    # trainable weight without a gradient (it would have stopped the run)
    assert one["ddp"] == two["ddp"] == {"find_unused_parameters": False, "broadcast_buffers": False}
    assert one["recompute"] == two["recompute"] == "lean"  # resolved from the defaults, as on a GPU
    # both launches measure the shipped compile mode (no mode pinned in their configs), which is the same for one
    # process and for a DDP launch of two (the default on this CPU; CUDA graphs for both on a GPU)
    assert one["torch_compile_mode"] == two["torch_compile_mode"] == "default"
    for gpus in (1, 2):
        assert "torch_compile_mode" not in yaml.safe_load((tmp_path / "work" / f"ddp-{gpus}.yaml").read_text())
    # --profile: every rank of every launch wrote what bounds its steps, and the timing left those steps out
    profiles = sorted(p.relative_to(tmp_path / "work").as_posix() for p in (tmp_path / "work").glob("*.profile/*"))
    assert profiles == ["ddp-1.profile/rank0.txt", "ddp-2.profile/rank0.txt", "ddp-2.profile/rank1.txt"]
    for name in profiles:
        assert (tmp_path / "work" / name).read_text().startswith("wall per step:")
    assert one["steps"] >= 5 + 1 + 3 + 2
    assert (one["gpus"], one["processes"], two["gpus"], two["processes"]) == (1, 1, 2, 2)
    assert one["global_batch"] == two["global_batch"] == 8 and one["steps"] == two["steps"]
    assert one["trained_tokens"] == two["trained_tokens"] >= 3000
    assert abs(two["loss"] - one["loss"]) < 0.01 * one["loss"] and abs(two["loss_vs_fewest"]) < 0.01
    assert one["tokens_per_s"] > 0 and two["speedup"] == round(two["tokens_per_s"] / one["tokens_per_s"], 2)
