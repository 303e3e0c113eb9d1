"""End to end on a tiny random Gemma 3: the real commands, asserting on the artifacts they write."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import STOP_ROWS, tiny_config

from gemsql.cli import main
from gemsql.config import load_config


def test_run_command_end_to_end(tmp_path, tiny_model, capsys):
    cfg = tiny_config(tmp_path / "run", tiny_model, save_strategy="steps", save_steps=1)
    config_file = tmp_path / "tiny.yaml"
    cfg.save(config_file)
    assert main(["run", str(config_file)]) == 0
    run = tmp_path / "run"
    # prepared data
    stats = json.loads((run / "data/stats.json").read_text())
    # 40 rows sampled: 8 test, the rest train, except rows over max_length=256 tokens, dropped and counted
    assert stats["test"]["rows"] == 8 and stats["train"]["rows"] > 0
    assert stats["train"]["rows"] + stats["test"]["rows"] + stats["train_rows_dropped_too_long"] == 40
    assert stats["train"]["max"] <= 256
    # adapter: small, with the trainable turn-token rows and the resolved config beside it
    adapter = run / "adapter"
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    turn_ids = tok.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"])
    assert adapter_config["trainable_token_indices"]["embed_tokens"] == turn_ids
    assert (adapter / "adapter_model.safetensors").stat().st_size < 2_000_000
    assert load_config(adapter / "gemsql_config.yaml") == cfg
    train_metrics = json.loads((adapter / "train_metrics.json").read_text())
    assert train_metrics["global_step"] == 2
    # what the config left to the machine, as this (CPU) run decided it: nothing compiled, no Liger, no padding
    assert train_metrics["as_run"] == {"torch_compile": False, "torch_compile_mode": None, "recompute": None,
                                       "use_liger_kernel": False, "pad_to_multiple_of": None, "packed_rows": True}
    # checkpoints and TensorBoard logs
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert list((run / "checkpoints").rglob("events.out.tfevents.*"))
    # merged model: plain safetensors that stop at <end_of_turn>
    merged = run / "merged"
    assert list(merged.glob("*.safetensors")) and (merged / "tokenizer.json").is_file()
    assert turn_ids[1] in json.loads((merged / "generation_config.json").read_text())["eos_token_id"]
    # evaluation of base and fine-tuned on the test split, and the report
    report = json.loads((run / "report.json").read_text())
    assert report["rows_test"] == 8 and report["rows_train"] == stats["train"]["rows"]
    for label in ("base", "finetuned"):
        metrics = json.loads((run / "eval" / label / "metrics.json").read_text())
        # execution-guided decoding is on by default: where it replaced answers, the greedy scores come too
        expected = {"exact_match", "valid_sql", "exec_match"} | ({"greedy"} if "greedy" in metrics else set())
        assert set(report[label]) == expected
        assert report[label]["exec_match"] == metrics["exec_match"]
        preds = [json.loads(x) for x in (run / "eval" / label / "predictions.jsonl").read_text().splitlines()]
        assert len(preds) == 8 and all("prediction" in p and p["sql"] for p in preds)
        if label == "base":  # scored greedy only, whatever execution_guided_beams says
            assert all(p["candidate"] == 0 for p in preds) and "greedy" not in metrics
        assert (run / "eval" / label / "verdicts.jsonl").is_file()
    assert "| finetuned | 8 |" in (run / "report.md").read_text()
    # and what the machine decided for the settings the config left unset, as training recorded it
    assert report["as_run"] == train_metrics["as_run"]
    trained_with = "Trained with torch_compile False, torch_compile_mode None, recompute None"
    assert trained_with in (run / "report.md").read_text()
    # one self-contained HTML page per evaluation, and base vs fine-tuned side by side with the flips
    html = (run / "comparison.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html and "http" not in html
    comparison = json.loads((run / "comparison.json").read_text())
    assert comparison["common_examples"] == 8 and comparison["fixed"] + comparison["broken"] == len(comparison["flipped"])
    assert (run / "eval" / "finetuned" / "report.html").is_file()
    assert main(["eval", "--compare", str(run / "eval" / "base"), str(run), "--eval_output", str(tmp_path / "cmp")]) == 0
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["common_examples"] == 8
    # no temporary leftovers anywhere
    assert not [p for p in run.rglob("*.tmp")]


def test_evaluation_after_liger_training_runs_in_a_fresh_process(tmp_path, tiny_model, monkeypatch, caplog):
    """Liger (GPU only) swaps Gemma 3's classes process-wide while training; `gemsql run` then merges and
    evaluates in a fresh interpreter, with the same figures as in the training process."""
    from gemsql import pipeline
    from gemsql.data.prepare import load_prepared

    cfg = tiny_config(tmp_path / "run", tiny_model, eval_rows=4)
    monkeypatch.setattr(pipeline, "training_patches_models", lambda cfg: True)  # as on a GPU with liger-kernel
    caplog.set_level(logging.INFO, logger="gemsql")
    report = pipeline.run(cfg)
    assert "merging and evaluating in a fresh process" in caplog.text
    assert json.loads((tmp_path / "run" / "report.json").read_text()) == report and report["rows_test"] == 4
    again = pipeline.evaluate_run(cfg, load_prepared(cfg))  # in this process, from the same adapter
    assert {k: v for k, v in again.items() if k != "minutes"} == {k: v for k, v in report.items() if k != "minutes"}


def test_merged_model_matches_base_plus_adapter(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    from gemsql.data import prepare
    from gemsql.generate import load_for_generation
    from gemsql.merge import merge
    from gemsql.train import train

    cfg = tiny_config(tmp_path / "run", tiny_model, learning_rate=5e-3)
    prepare(cfg)
    result = train(cfg)
    merged = merge(cfg)
    plain = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    peft, tok = load_for_generation(str(tiny_model), adapter=str(result.trained_dir), dtype=torch.float32)
    ids = tok("SELECT name FROM employees WHERE salary > 5", return_tensors="pt").input_ids
    with torch.no_grad():
        a, b = plain(ids).logits, peft(ids).logits
    # merged weights are stored in bf16, so allow bf16 rounding of the weights
    assert torch.allclose(a, b, atol=2e-2, rtol=0), (a - b).abs().max()


def test_full_finetuning_trains_every_weight_and_merges_to_the_same_model(tmp_path, tiny_model, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path / "run"
    flags = ["--model_name_or_path", str(tiny_model), "--output_dir", str(run), "--num_rows", "40", "--test_size", "8",
             "--quantization", "none", "--finetuning", "full", "--max_length", "256", "--max_steps", "2",
             "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--save_strategy", "no",
             "--report_to", "none"]
    assert main(["prepare", *flags]) == 0 and main(["train", *flags]) == 0
    assert f"model: {run / 'full_model'} (steps 2" in capsys.readouterr().out
    trained_dir = run / "full_model"
    assert not (trained_dir / "adapter_config.json").exists() and (trained_dir / "gemsql_config.yaml").is_file()
    base = dict(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).named_parameters())
    trained = AutoModelForCausalLM.from_pretrained(trained_dir, dtype=torch.float32)
    changed = {n for n, w in trained.named_parameters() if not torch.equal(w, base[n])}
    # the embedding (tied to the output head), attention, MLP and norms all trained: no adapter, no frozen base
    for name in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                 "model.layers.1.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight"):
        assert name in changed, name
    from safetensors.torch import load_file

    # trained in float32 weights (bf16 would round small updates away)
    assert {w.dtype for w in load_file(str(trained_dir / "model.safetensors")).values()} == {torch.float32}
    assert main(["merge", *flags]) == 0  # the merged model is saved in the compute dtype (bf16 here)
    merged = AutoModelForCausalLM.from_pretrained(run / "merged", dtype=torch.float32)
    rounded = AutoModelForCausalLM.from_pretrained(trained_dir, dtype=torch.bfloat16).float()
    ids = torch.tensor([[2, 10, 11, 12, 13]])
    with torch.no_grad():
        assert torch.equal(merged(ids).logits, rounded(ids).logits)
    tok = AutoTokenizer.from_pretrained(run / "merged")
    assert tok.convert_tokens_to_ids("<end_of_turn>") in merged.generation_config.eos_token_id


def test_merge_without_trained_weights_names_the_folder(tmp_path, tiny_model):
    from gemsql.errors import GemsqlError
    from gemsql.merge import merge

    cfg = tiny_config(tmp_path / "run", tiny_model, finetuning="full")
    (tmp_path / "run" / "full_model").mkdir(parents=True)  # a folder with neither an adapter nor a model in it
    with pytest.raises(GemsqlError, match="no trained weights") as e:
        merge(cfg)
    assert str(tmp_path / "run" / "full_model") in str(e.value)
    assert not (tmp_path / "run" / "merged").exists()


def test_training_resumes_from_the_last_complete_checkpoint(tmp_path, tiny_model, caplog):
    from gemsql.data import prepare
    from gemsql.train import checkpoint_problem, last_checkpoint, train

    cfg = tiny_config(tmp_path / "run", tiny_model, save_strategy="steps", save_steps=1, max_steps=2)
    prepare(cfg)
    train(cfg)
    ckpts = tmp_path / "run" / "checkpoints"
    assert checkpoint_problem(ckpts / "checkpoint-2") is None  # sealed with its files' digests
    adapter = ckpts / "checkpoint-2" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])  # a checkpoint damaged after it was written
    with caplog.at_level("WARNING"):
        assert last_checkpoint(cfg) == str(ckpts / "checkpoint-1")
    assert "changed since written: adapter_model.safetensors" in caplog.text
    unsealed = ckpts / "checkpoint-9"
    unsealed.mkdir()
    (unsealed / "trainer_state.json").write_text("{}")  # a writer killed before the end: no seal
    assert "not sealed" in checkpoint_problem(unsealed) and last_checkpoint(cfg) == str(ckpts / "checkpoint-1")
    shutil.rmtree(unsealed)
    cfg3 = tiny_config(tmp_path / "run", tiny_model, save_strategy="steps", save_steps=1, max_steps=3)
    with caplog.at_level("INFO"):
        result = train(cfg3)
    assert result.steps == 3
    assert "resuming from" in caplog.text and "checkpoint-1" in caplog.text
    state = json.loads((ckpts / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3


def test_a_failure_inside_cuda_graphs_names_the_setting(tmp_path, tiny_model, monkeypatch):
    """PyTorch's error from inside CUDA graphs names neither torch_compile_mode nor the way around it: training with
    them (here asked for; on a GPU the default outside FSDP and DeepSpeed) turns it into a GemsqlError on that field,
    PyTorch's message kept; with torch.compile's default mode the error passes unchanged. (Resuming from the last
    checkpoint, which the message promises: test_training_resumes_from_the_last_complete_checkpoint.)"""
    from trl import SFTTrainer

    from gemsql.data import prepare
    from gemsql.errors import GemsqlError
    from gemsql.train import train

    message = "Error: accessing tensor output of CUDAGraphs that has been overwritten by a subsequent run."

    def fails(self, *args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(SFTTrainer, "train", fails)
    for mode in ("reduce-overhead", "default"):
        cfg = tiny_config(tmp_path / mode, tiny_model, quantization="4bit", torch_compile=True,
                          torch_compile_mode=mode, max_steps=1)
        prepare(cfg)
        with pytest.raises((GemsqlError, RuntimeError), match="CUDAGraphs") as e:
            train(cfg)
        if mode == "reduce-overhead":
            assert isinstance(e.value, GemsqlError) and e.value.field == "torch_compile_mode"
            assert "--torch_compile_mode default" in str(e.value) and message in str(e.value)
        else:
            assert type(e.value) is RuntimeError and str(e.value) == message


def test_qlora_4bit_trains_on_the_cpu(tmp_path, tiny_model):
    from gemsql.data import prepare
    from gemsql.model import load_model
    from gemsql.train import train

    cfg = tiny_config(tmp_path / "run", tiny_model, quantization="4bit", max_steps=1)
    assert type(load_model(cfg.model).model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
    prepare(cfg)
    result = train(cfg)
    assert result.steps == 1 and result.train_loss > 0
    assert (result.trained_dir / "adapter_model.safetensors").is_file()


def test_recompute_is_on_while_training_when_configured(tmp_path, tiny_model):
    """gradient_checkpointing (the tutorial's recipe) reaches the model through transformers' current name for it."""
    from gemsql.data import prepare
    from gemsql.train import setup

    for recompute in (True, False):
        cfg = tiny_config(tmp_path / f"run-{recompute}", tiny_model, gradient_checkpointing=recompute, max_steps=1)
        prepare(cfg)
        trainer, _ = setup(cfg)
        trainer.train()
        assert trainer.model.get_base_model().is_activation_checkpointing is recompute


def test_torch_compile_compiles_each_layer_in_place_and_trains_the_same(tmp_path, tiny_model):
    """torch_compile compiles the decoder layers, not the whole model through the trainer, and the compiled layers
    train to the eager run's losses (QLoRA, on the CPU), with activation recompute too (each compiled layer's forward
    then runs again in the backward: by default, gradient_checkpointing unset, leanly). The run with recompute
    asks for CUDA graphs (torch_compile_mode reduce-overhead, once refused with recompute), which the CPU runs as plain
    compiled code; as every run accumulates two micro-batches a step, each trainable weight's first gradient of a step
    is then copied out of the backward's output (on a GPU, the graphs' memory pool that the next replay writes over),
    and only then."""
    import torch._dynamo

    from gemsql.data import prepare
    from gemsql.train import cleanup, recompute_mode, setup

    losses = {}
    for compiled, recompute in ((False, False), (True, False), (True, None)):
        # every row padded to max_length: one shape, so one compile (a second shape would recompile, dynamic)
        mode = "reduce-overhead" if (compiled, recompute) == (True, None) else "default"
        cfg = tiny_config(tmp_path / f"run-{compiled}-{recompute}", tiny_model, quantization="4bit",
                          torch_compile=compiled, gradient_checkpointing=recompute, max_steps=3, logging_steps=1,
                          report_to="none", pad_to_multiple_of=256, torch_compile_mode=mode,
                          gradient_accumulation_steps=2)
        prepare(cfg)
        torch._dynamo.reset()
        assert recompute_mode(cfg) == (None if recompute is False else "lean")
        trainer, tokenizer = setup(cfg)
        w = next(p for p in trainer.model.parameters() if p.requires_grad)
        incoming, landed = {}, []  # a step's first gradient's memory and the .grad it became
        w.register_hook(lambda g: incoming.update(memory=g.data_ptr(), first=w.grad is None))
        w.register_post_accumulate_grad_hook(
            lambda p: landed.append(p.grad.data_ptr() != incoming["memory"]) if incoming["first"] else None)
        layers = trainer.model.get_base_model().model.layers
        assert all((layer._compiled_call_impl is not None) is compiled for layer in layers)
        assert trainer.args.torch_compile is False  # the trainer would compile the whole model again
        result = trainer.train()
        # compiled layers recompute inside their compiled region, not in transformers' checkpointing around them
        assert trainer.model.get_base_model().is_activation_checkpointing is False
        losses[compiled, recompute] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        assert landed == [mode == "reduce-overhead"] * 3  # copied, once a step, only where graphs are asked for
        if compiled:
            assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
            assert (cleanup(cfg, trainer, tokenizer, result).trained_dir / "adapter_model.safetensors").is_file()
    assert len(losses[True, False]) == len(losses[True, None]) == 3
    assert losses[True, False] == pytest.approx(losses[False, False], rel=2e-3)
    assert losses[True, None] == pytest.approx(losses[False, False], rel=2e-3)


def test_selective_recompute_needs_4bit_and_says_where_it_does_not_apply(tmp_path, tiny_model, caplog):
    """recompute selective keeps every other 4-bit matmul's output: with quantization none it is refused before
    anything loads, with the field named; with layers not compiled (transformers' checkpointing recomputes every op)
    the log says so."""
    from gemsql.data import prepare
    from gemsql.errors import GemsqlError
    from gemsql.train import setup

    cfg = tiny_config(tmp_path / "none", tiny_model, gradient_checkpointing=True, recompute="selective",
                      quantization="none")
    with pytest.raises(GemsqlError, match="no 4-bit matmuls") as e:
        setup(cfg)
    assert e.value.field == "recompute"
    with pytest.raises(GemsqlError, match="lean keeps some 4-bit") as e:  # lean keeps some of them too
        setup(tiny_config(tmp_path / "none-lean", tiny_model, gradient_checkpointing=True, recompute="lean",
                          quantization="none"))
    assert e.value.field == "recompute"
    cfg = tiny_config(tmp_path / "eager", tiny_model, gradient_checkpointing=True, recompute="selective",
                      quantization="4bit", torch_compile=False)
    prepare(cfg)
    with caplog.at_level(logging.WARNING, logger="gemsql"):
        trainer, _ = setup(cfg)
    assert "selective applies to compiled layers" in caplog.text
    assert trainer.args.activation_checkpointing  # transformers' own, turned on as training starts


@pytest.mark.parametrize("recompute", ["full", "selective"])
def test_compiled_recompute_marks_the_4bit_matmuls_and_keeps_shapes_static(tmp_path, tiny_model, recompute):
    """Inside each compiled layer's recompute every op is marked for the partitioner, bitsandbytes' 4-bit matmuls
    included: with recompute full all MUST_RECOMPUTE. checkpoint's own marking left them unmarked on the H200 (PyTorch
    2.11), so their outputs were kept: 1.93 of the 270M's 3.85 GiB peak (1.95 GiB once marked); this CPU's PyTorch
    marks them only PREFER_RECOMPUTE, which a policy must not leave to chance either. With recompute selective the
    first, third, ... of each layer's seven are MUST_SAVE, the others MUST_RECOMPUTE, and the attention's output is
    kept (recompute lean's positions: test_model.py, and what it keeps: test_bench_tools.py). And a shorter
    micro-batch (an epoch's last) gets a static graph of its own: the dynamic-shape graph that
    PyTorch 2.11 made of it with recompute failed to partition on the H200. Read off the joint graphs that Inductor partitions, through its joint-graph pass hook."""
    import torch._dynamo
    from torch._inductor import config as inductor_config
    from torch._inductor.custom_graph_pass import CustomGraphPass
    from torch.utils.checkpoint import CheckpointPolicy

    from gemsql.data import prepare
    from gemsql.train import setup

    class MatmulMarks(CustomGraphPass):
        def __init__(self):
            self.marks: list = []
            self.attention: list = []
            self.graphs = self.symbolic = 0

        def __call__(self, graph):
            self.marks += [n.meta.get("recompute") for n in graph.nodes if "gemm_4bit" in str(n.target)]
            self.attention += [n.meta.get("recompute") for n in graph.nodes
                               if "scaled_dot_product" in str(n.target) and "backward" not in str(n.target)]
            self.graphs += 1
            self.symbolic += any(isinstance(d, torch.SymInt) for n in graph.nodes
                                 for d in getattr(n.meta.get("val"), "shape", ()))

        def uuid(self):
            return None  # no cache key: every graph is compiled, and so seen

    cfg = tiny_config(tmp_path / "run", tiny_model, torch_compile=True, gradient_checkpointing=True,
                      recompute=recompute, quantization="4bit", stop_token_training="none",
                      per_device_train_batch_size=4)
    prepare(cfg)
    torch._dynamo.reset()
    seen = MatmulMarks()
    with inductor_config.patch(joint_custom_pre_pass=seen):
        trainer, _ = setup(cfg)
        trainer.model.train()
        batch = next(iter(trainer.get_train_dataloader()))
        trainer.compute_loss(trainer.model, batch).backward()
        assert batch["input_ids"].shape[0] == 4
        # three rows, not one: sizes 0 and 1 are specialized even in a dynamic graph
        shorter = {k: v[:3] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        trainer.compute_loss(trainer.model, shorter).backward()
    assert seen.graphs >= 2, seen.graphs  # at least one for each shape (the layers share each)
    assert len(seen.marks) >= 14 and len(seen.marks) % 7 == 0, seen.marks  # seven projections a layer, each shape
    save, again = CheckpointPolicy.MUST_SAVE, CheckpointPolicy.MUST_RECOMPUTE
    if recompute == "full":
        assert set(seen.marks) == {again}, seen.marks
        assert set(seen.attention) <= {again}, seen.attention
    else:
        assert seen.marks == [save, again, save, again, save, again, save] * (len(seen.marks) // 7), seen.marks
        assert seen.attention and set(seen.attention) == {save}, seen.attention
    assert seen.symbolic == 0


def test_a_trained_model_stops_at_end_of_turn(tiny_model, stop_trained):
    """The model must learn to end its answer: greedy decoding stops at <end_of_turn> right after the SQL."""
    from gemsql.generate import generate_sql, load_for_generation

    merged, adapter = stop_trained
    pairs = [(r["sql_prompt"], r["sql_context"]) for r in STOP_ROWS]
    # control: the untrained model never ends its turn within the budget, so ending it below is learned
    base, tok = load_for_generation(str(tiny_model))
    control = generate_sql(base, tok, pairs, max_new_tokens=24, stop_at_statement_end=False, progress=False)
    assert [g.stop_reason for g in control] == ["length"] * 3
    model, tok = load_for_generation(str(merged))
    # without the statement cut, so that what ends each answer is the model's own <end_of_turn>
    gens = generate_sql(model, tok, pairs, max_new_tokens=24, stop_at_statement_end=False, progress=False)
    assert [g.stop_reason for g in gens] == ["<end_of_turn>"] * 3, [g.raw for g in gens]
    assert [g.sql for g in gens] == [r["sql"] for r in STOP_ROWS]
    assert all(g.new_tokens < 24 for g in gens)
    # the merged model gives the same greedy SQL as the base with the adapter on top
    unmerged, tok = load_for_generation(str(tiny_model), adapter=str(adapter))
    same = generate_sql(unmerged, tok, pairs, max_new_tokens=24, stop_at_statement_end=False, progress=False)
    assert [g.sql for g in same] == [g.sql for g in gens]


class _SmallGpu:
    """A model whose generate() runs out of GPU memory above `limit` prompts at once (as a small GPU would)."""

    def __init__(self, model, limit: int):
        self.model, self.limit, self.batches = model, limit, []

    def parameters(self):
        return self.model.parameters()

    def generate(self, **kwargs):
        self.batches.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model.generate(**kwargs)


def test_generation_halves_a_batch_that_does_not_fit(stop_trained, caplog):
    from gemsql.generate import generate_sql, load_for_generation

    model, tok = load_for_generation(str(stop_trained[0]))
    pairs = [(r["sql_prompt"], r["sql_context"]) for r in STOP_ROWS] * 2
    small = _SmallGpu(model, limit=2)
    gens = generate_sql(small, tok, pairs, max_new_tokens=24, batch_size=6, progress=False)
    assert small.batches == [6, 3, 1, 2, 3, 1, 2]  # 6 -> 3 + 3, each 3 -> 1 + 2
    assert [g.sql for g in gens] == [r["sql"] for r in STOP_ROWS] * 2  # complete, in input order
    assert "out of GPU memory generating 6 prompts at once; trying 3" in caplog.text
    with pytest.raises(torch.OutOfMemoryError):  # one prompt that does not fit is a real error
        generate_sql(_SmallGpu(model, limit=0), tok, pairs[:1], max_new_tokens=8, progress=False)


def test_rows_that_ended_leave_the_batch_and_the_rest_go_on(tiny_model, stop_trained):
    """Decoding in rounds gives exactly the single-pass answers, while answers that ended stop being decoded."""
    from gemsql.data.builtin import generate as builtin_rows
    from gemsql.generate import generate_sql, load_for_generation

    model, tok = load_for_generation(str(stop_trained[0]))
    # three questions the model learned to answer briefly, and six it rambles on
    pairs = [(r["sql_prompt"], r["sql_context"]) for r in STOP_ROWS] + [
        (r.question, r.context) for r in builtin_rows(6, seed=3)]
    for stop_at_statement_end in (True, False):
        once = generate_sql(model, tok, pairs, max_new_tokens=40, batch_size=9, first_round_tokens=0,
                            stop_at_statement_end=stop_at_statement_end, progress=False)
        recorder = _SmallGpu(model, limit=len(pairs))
        rounds = generate_sql(recorder, tok, pairs, max_new_tokens=40, batch_size=9, first_round_tokens=4,
                              stop_at_statement_end=stop_at_statement_end, progress=False)
        assert [(g.raw, g.stop_reason, g.new_tokens) for g in rounds] == [
            (g.raw, g.stop_reason, g.new_tokens) for g in once]
        assert recorder.batches[0] == 9 and recorder.batches[-1] < 9, recorder.batches  # the brief ones left
        assert {g.stop_reason for g in once[:3]} <= {"<end_of_turn>", "statement"}
    # a model whose generation config asks for a static cache (which cannot shrink) still decodes in rounds
    model.generation_config.cache_implementation = "static"
    static = generate_sql(model, tok, pairs, max_new_tokens=40, batch_size=9, first_round_tokens=4,
                          stop_at_statement_end=False, progress=False)
    assert [g.raw for g in static] == [g.raw for g in once]


def test_execution_guided_decoding_replaces_only_answers_that_do_not_run(stop_trained):
    from gemsql.data.schema import context_blocks
    from gemsql.generate import context_runner, generate_sql, load_for_generation, runnable

    model, tok = load_for_generation(str(stop_trained[0]))
    # the tiny model memorized three questions about three one-table schemas; here the tables differ
    # (which cue a model this small copies the table from, question or schema, is down to its training: on tables it
    # never saw, this one keeps the question's)
    pets = "\n".join(context_blocks("CREATE TABLE fish (name TEXT); CREATE TABLE birds (age INT);", 3))
    pairs = [("How many cats?", pets), ("Oldest bird?", pets), ("How many cats?", pets)]
    greedy = generate_sql(model, tok, pairs, max_new_tokens=24, progress=False)
    on_db = context_runner([c for _, c in pairs])
    assert [g.sql for g in greedy] == ["SELECT COUNT(*) FROM cats;", "SELECT MAX(age) FROM birds;",
                                       "SELECT COUNT(*) FROM cats;"]
    assert [on_db(i, g.sql) for i, g in enumerate(greedy)] == [False, True, False]  # no such table: cats
    assert not context_runner(["CREATE TABLE broken ("])(0, "SELECT 1;")  # a context that does not build
    seen: list[tuple[int, str]] = []

    def runs(i: int, sql: str) -> bool:
        seen.append((i, sql))
        return on_db(i, sql)

    recorder = _SmallGpu(model, limit=10)
    guided = runnable(recorder, tok, pairs, greedy, runs, beams=4, max_new_tokens=24, batch_size=8)
    assert seen[:3] == [(i, g.sql) for i, g in enumerate(greedy)]  # every greedy answer is checked first
    assert recorder.batches == [2]  # one beam-search batch, of the two rows that did not run
    assert guided[1] == greedy[1]  # an answer that runs is left alone
    for i in (0, 2):
        assert 1 <= guided[i].candidate <= 4 and on_db(i, guided[i].sql), guided[i]
        assert guided[i].raw == greedy[i].raw  # what the model said first stays on record
        assert guided[i].greedy_sql == greedy[i].sql  # and the greedy SQL, for `gemsql eval` to score both
    assert guided[1].greedy_sql is None
    # nothing runs: every greedy answer stays as it was
    assert runnable(model, tok, pairs, greedy, lambda i, sql: False, beams=3, max_new_tokens=24) == greedy


def test_an_answer_without_sql_is_retried_even_though_sqlite_runs_an_empty_string(monkeypatch):
    import gemsql.generate
    from gemsql.generate import Generation, context_runner, runnable

    assert context_runner(["CREATE TABLE t (a INT);"])(0, "")  # what SQLite says of an empty string
    monkeypatch.setattr(gemsql.generate, "beam_sql",
                        lambda model, tok, pairs, rows, **kw: ((i, ["", "SELECT 1;"]) for i in rows))
    greedy = [Generation("", "SELECT", 3, "length"), Generation("SELECT 2;", "SELECT 2;", 3, "statement")]
    out = runnable(None, None, [("q", "c")] * 2, greedy, lambda i, sql: True, beams=2)
    assert [(g.sql, g.candidate) for g in out] == [("SELECT 1;", 2), ("SELECT 2;", 0)]


def test_retry_empty_results_also_retries_an_answer_that_returns_no_rows(monkeypatch):
    import gemsql.generate
    from gemsql.evaluate.sandbox import memory_db, run
    from gemsql.generate import Generation, context_runner, passes, runnable

    contexts = ["CREATE TABLE t (a INT); INSERT INTO t VALUES (1);"] * 2
    runs, returns_rows = context_runner(contexts), context_runner(contexts, rows_needed=True)
    none, some = "SELECT a FROM t WHERE a = 2;", "SELECT a FROM t;"
    assert runs(0, none) and not returns_rows(0, none)
    assert returns_rows(0, some) and not returns_rows(0, "SELECT b FROM t;")
    monkeypatch.setattr(gemsql.generate, "beam_sql",
                        lambda model, tok, pairs, rows, **kw: ((i, ["SELECT a FROM t WHERE a = 3;", some]) for i in rows))
    greedy = [Generation(none, none, 3, "statement"), Generation(some, some, 3, "statement")]
    pairs = [("q", "c")] * 2
    assert runnable(None, None, pairs, greedy, runs, beams=2) == greedy  # no rows still counts as running
    out = runnable(None, None, pairs, greedy, returns_rows, beams=2)
    assert [(g.sql, g.candidate, g.greedy_sql) for g in out] == [(some, 2, none), (some, 0, None)]
    # ask's check on a user's database: the same rule
    con = memory_db(contexts[0])
    assert passes(run(con, none), rows_needed=False) and not passes(run(con, none), rows_needed=True)
    assert passes(run(con, some), rows_needed=True) and not passes(run(con, "SELECT b FROM t;"), rows_needed=False)


def test_execution_vote_takes_the_result_most_candidates_agree_on(monkeypatch):
    import gemsql.generate
    from gemsql.generate import Generation, voted

    # the beams each row's beam search would give (fixed here: the vote is what is under test)
    beams = {0: ["a1", "y1", "y2"], 1: ["y1", "z1", "x2"], 2: ["y1", "y2", "bad"], 3: ["bad", "bad"], 4: ["y1"]}
    seen_rows = []

    def fake_beam_sql(model, tokenizer, pairs, rows, **kw):
        seen_rows.extend(rows)
        for i in rows:
            yield i, beams[i]

    monkeypatch.setattr(gemsql.generate, "beam_sql", fake_beam_sql)
    greedy = [Generation(sql, sql, 1, "<end_of_turn>") for sql in ("bad", "x1", "x1", "bad", "x1")]
    # what each SQL returns on its database: a letter is a result, "bad" does not run
    outcome = lambda i, sql: None if sql == "bad" else sql[0]  # noqa: E731
    out = voted(None, None, [("q", "c")] * 5, greedy, outcome, beams=3)
    assert seen_rows == [0, 1, 2, 3, 4]  # every row gets beams, not only the failing ones
    assert [(g.sql, g.candidate, g.greedy_sql) for g in out] == [
        ("y1", 2, "bad"),  # greedy fails; two beams agree on y over one a: the likelier of the two
        ("x1", 0, None),  # greedy x and the third beam agree: greedy stays
        ("y1", 1, "x1"),  # two beams agree on y against the greedy x
        ("bad", 0, None),  # nothing runs: greedy stays
        ("x1", 0, None),  # a tie goes to the likelier: greedy
    ]
    empty = voted(None, None, [("q", "c")], [Generation(" ", " ", 1, "length")], lambda i, sql: "r", beams=3)
    assert (empty[0].sql, empty[0].candidate) == ("a1", 1)  # an answer without SQL has no result to vote with


def test_first_statement_cuts_an_answer_after_its_first_complete_statement():
    from gemsql.generate import first_statement

    assert first_statement("SELECT 1; SELECT 2;") == "SELECT 1;"
    assert first_statement("SELECT ';' AS s; DROP TABLE t;") == "SELECT ';' AS s;"
    assert first_statement("```sql\nSELECT a FROM t;\n```\nmore") == "SELECT a FROM t;"
    assert first_statement("SELECT a FROM t") == "SELECT a FROM t"  # nothing completes: all of it


def test_extract_sql_starts_at_the_first_word_a_statement_can_start_with():
    from gemsql.generate import extract_sql

    # stray text before the SQL (a fine-tuned 270M's "거짓" on held-out Spider), labels, fences
    assert extract_sql("거짓\nSELECT count(*) FROM club") == "SELECT count(*) FROM club"
    assert extract_sql("거alicieeks SELECT T1.name FROM t AS T1") == "SELECT T1.name FROM t AS T1"
    assert extract_sql("SQL: select a from t") == "select a from t"
    assert extract_sql("Answer:\nWITH x AS (SELECT 1) SELECT * FROM x") == "WITH x AS (SELECT 1) SELECT * FROM x"
    assert extract_sql("```sql\nUPDATE t SET a = 1\n```") == "UPDATE t SET a = 1"
    # a statement's own words are not cut (an identifier that merely contains a keyword is not a start)
    assert extract_sql("SELECT deleted_at FROM t") == "SELECT deleted_at FROM t"
    # prose that holds such a word: the first start whose rest parses
    assert extract_sql("The query with a join: SELECT a FROM t JOIN u USING (id)") == "SELECT a FROM t JOIN u USING (id)"
    assert extract_sql("거짓\nSELECT a FROM t WHERE a = = 1") == "SELECT a FROM t WHERE a = = 1"  # nothing parses
    assert extract_sql("(SELECT a FROM t) UNION SELECT b FROM u") == "(SELECT a FROM t) UNION SELECT b FROM u"
    assert extract_sql("update_log") == "update_log"  # no statement at all: kept as it is, and it will not run
    assert extract_sql("  ") == ""
    deep = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    assert extract_sql("x " + deep) == deep  # too deep to parse: from the first start, without a crash


def _cudnn_flags_seen(model) -> list[bool]:
    """Whether SDPA could pick cuDNN's kernels, recorded at every forward pass of `model`."""
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    return seen


def test_cudnn_attention_auto_keeps_sdpa_away_from_cudnn_while_generating(stop_trained):
    from gemsql.generate import generate_sql, load_for_generation, runnable
    from gemsql.model import attention_kernels

    with attention_kernels(False):
        assert not torch.backends.cuda.cudnn_sdp_enabled() and torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored on leaving
    model, tok = load_for_generation(str(stop_trained[0]))
    pairs = [(r["sql_prompt"], r["sql_context"]) for r in STOP_ROWS]
    seen = _cudnn_flags_seen(model)
    with_cudnn = generate_sql(model, tok, pairs, max_new_tokens=24, progress=False, cudnn_attention=True)
    assert seen and all(seen)
    for setting in (None, False):  # auto (the default) decodes without cuDNN, as false does
        seen.clear()
        without = generate_sql(model, tok, pairs, max_new_tokens=24, progress=False, cudnn_attention=setting)
        assert seen and not any(seen)  # every decoding step, every round
        assert [g.raw for g in without] == [g.raw for g in with_cudnn]
    # the beam retry of execution-guided decoding too
    seen.clear()
    runnable(model, tok, pairs, without, lambda i, sql: False, beams=2, max_new_tokens=4)
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_cudnn_attention_auto_trains_with_cudnn_only_on_large_micro_batches(tmp_path):
    from gemsql.config import load_config
    from gemsql.model import CUDNN_TRAINING_TOKENS, cudnn_allowed
    from gemsql.train import cudnn_in_training

    assert cudnn_allowed(None, decoding=False, micro_batch_tokens=CUDNN_TRAINING_TOKENS)
    assert not cudnn_allowed(None, decoding=False, micro_batch_tokens=CUDNN_TRAINING_TOKENS - 1)
    assert not cudnn_allowed(None, decoding=True, micro_batch_tokens=10**6)
    assert cudnn_allowed(True, decoding=True) and not cudnn_allowed(False, decoding=False, micro_batch_tokens=10**6)
    assert not cudnn_in_training(load_config(None, per_device_train_batch_size=4))  # 4 x 512 tokens
    assert cudnn_in_training(load_config(None))  # the default 16 x 512
    assert cudnn_in_training(load_config(Path(__file__).parents[1] / "configs" / "spider.yaml"))  # 8 x 1,024
    assert cudnn_in_training(load_config(None, cudnn_attention=True))


def test_liger_makes_way_for_compiled_layers(monkeypatch, tiny_model):
    """With the layers compiled, Liger's layer kernels are off unless asked for (inductor fuses norms itself)."""
    import importlib.util

    import torch

    from gemsql.config import load_config
    from gemsql.train import use_liger

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    _pretend_triton(monkeypatch, installed=True)
    liger_installed = importlib.util.find_spec("liger_kernel") is not None
    assert use_liger(load_config(None, torch_compile=False)) is liger_installed
    assert not use_liger(load_config(None, model_name_or_path=str(tiny_model)))  # compiled by default on a GPU
    assert not use_liger(load_config(None, torch_compile=True))
    assert use_liger(load_config(None, torch_compile=True, use_liger_kernel=True))


def _pretend_triton(monkeypatch, installed: bool) -> None:
    """importlib finds Triton (or not) whatever this machine has (a CPU build of torch comes without it)."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (find_spec("json") if installed else None) if name == "triton" else find_spec(name, *a)))


def test_layers_are_compiled_by_default_only_where_measured(monkeypatch, tiny_model, tmp_path):
    """torch_compile's default: an adapter on a text-only model on a CUDA GPU, alone or under DDP/FSDP2; not on the CPU,
    not on a GPU older than Triton compiles for, not for full fine-tuning or an image-text checkpoint, not under FSDP1
    or DeepSpeed (where the default is no error either); a set value always wins."""
    import torch
    from transformers import Gemma3Config

    from gemsql.config import load_config
    from gemsql.train import _check_engine, use_compile

    Gemma3Config().save_pretrained(tmp_path / "image-text")  # the 4B's kind: a vision tower beside the text model
    image_text = load_config(None, model_name_or_path=str(tmp_path / "image-text"))
    default = load_config(None, model_name_or_path=str(tiny_model))
    full = load_config(None, model_name_or_path=str(tiny_model), finetuning="full", quantization="none")
    _pretend_triton(monkeypatch, installed=False)  # a CUDA GPU without Triton (its Windows builds, say)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert not use_compile(default)
    _pretend_triton(monkeypatch, installed=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not use_compile(default) and use_compile(load_config(None, torch_compile=True))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 0))  # older than Triton compiles for
    assert not use_compile(default)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert use_compile(default) and not use_compile(full) and not use_compile(image_text)
    assert use_compile(load_config(None, finetuning="full", quantization="none", torch_compile=True))
    assert not use_compile(load_config(None, torch_compile=False))
    for env, compiled in (({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, True),
                          ({"ACCELERATE_USE_FSDP": "true"}, False), ({"ACCELERATE_USE_DEEPSPEED": "true"}, False)):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            assert use_compile(default) is compiled, env
            _check_engine(default)


def test_cuda_graphs_by_default_only_for_compiled_layers_on_a_gpu_outside_sharded_launches(monkeypatch, tiny_model):
    """torch_compile_mode's default: reduce-overhead (CUDA graphs) where it was measured, compiled layers over 4-bit
    matmuls recomputing partially (lean, selective) or not at all, on a CUDA GPU, in one process or under DDP;
    torch.compile's default elsewhere: on the CPU, for layers left eager, with full recompute (the tutorial's), for
    LoRA without quantization, under FSDP or DeepSpeed (not measured there); a set mode always wins."""
    import torch

    from gemsql.config import load_config
    from gemsql.train import compile_mode, recompute_mode

    default = load_config(None, model_name_or_path=str(tiny_model))
    assert compile_mode(default) == "default"  # this CPU
    assert compile_mode(load_config(None, torch_compile_mode="reduce-overhead")) == "reduce-overhead"
    _pretend_triton(monkeypatch, installed=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert compile_mode(default) == "reduce-overhead"
    assert compile_mode(load_config(None, model_name_or_path=str(tiny_model), gradient_checkpointing=False)) == (
        "reduce-overhead")
    assert compile_mode(load_config(None, model_name_or_path=str(tiny_model), torch_compile_mode="default")) == "default"
    assert compile_mode(load_config(None, model_name_or_path=str(tiny_model), torch_compile=False)) == "default"
    assert compile_mode(load_config(None, model_name_or_path=str(tiny_model), recompute="full")) == "default"
    assert recompute_mode(default) == "lean"  # the partial recomputes were measured with graphs: lean and selective
    assert compile_mode(load_config(None, model_name_or_path=str(tiny_model), recompute="selective")) == (
        "reduce-overhead")
    assert compile_mode(load_config(None, model_name_or_path=str(tiny_model), quantization="none")) == "default"
    tutorial = load_config(Path(__file__).parents[1] / "configs/gemma3-1b-tutorial.yaml",
                           model_name_or_path=str(tiny_model))
    assert compile_mode(tutorial) == "default"
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun, or accelerate's multi-GPU launch: DDP
    assert compile_mode(default) == "reduce-overhead"
    # sharded launches, with one process too: FSDP2 (its layers compiled), FSDP1 and DeepSpeed (compiling refused)
    for engine in ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, {"ACCELERATE_USE_FSDP": "true"},
                   {"ACCELERATE_USE_DEEPSPEED": "true"}):
        for world in ("1", "2"):
            with monkeypatch.context() as m:
                for k, v in {**engine, "WORLD_SIZE": world}.items():
                    m.setenv(k, v)
                assert compile_mode(default) == "default"
                assert compile_mode(load_config(None, torch_compile_mode="reduce-overhead")) == "reduce-overhead"


def test_compiled_layers_are_refused_under_fsdp1_and_deepspeed(monkeypatch):
    """Before anything loads, with the field named; FSDP2 (and a plain launch) pass."""
    from gemsql.config import load_config
    from gemsql.errors import GemsqlError
    from gemsql.train import _check_engine

    compiled = load_config(None, torch_compile=True)
    _check_engine(compiled)
    for env in ({"ACCELERATE_USE_DEEPSPEED": "true"}, {"ACCELERATE_USE_FSDP": "true"},
                {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            _check_engine(load_config(None))  # not compiled: nothing to refuse
            if env.get("FSDP_VERSION") == "2":
                _check_engine(compiled)
                continue
            with pytest.raises(GemsqlError, match="not supported under FSDP1 or DeepSpeed") as e:
                _check_engine(compiled)
            assert e.value.field == "torch_compile" and str(e.value).startswith("field 'torch_compile'")


def test_cudnn_attention_off_reaches_training(tmp_path, tiny_model, monkeypatch):
    import gemsql.train
    from gemsql.data import prepare

    seen: list[bool] = []
    real_setup = gemsql.train.setup

    def recording_setup(cfg):
        trainer, tokenizer = real_setup(cfg)
        trainer.model.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
        return trainer, tokenizer

    monkeypatch.setattr(gemsql.train, "setup", recording_setup)
    cfg = tiny_config(tmp_path / "run", tiny_model, max_steps=2, save_strategy="no", cudnn_attention=False)
    prepare(cfg)
    assert gemsql.train.train(cfg).steps == 2
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_ask_runs_the_answer_read_only_on_a_users_database(tmp_path, stop_trained, capsys):
    import sqlite3

    from gemsql.ask import ask

    merged, _ = stop_trained
    db = tmp_path / "pets.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE cats (id INT)")  # empty: the schema the model sees is exactly its training prompt
    con.commit()
    con.close()
    before = db.read_bytes()
    answer = ask(str(merged), "How many cats?", db=db, dialect="postgres")
    assert answer.sql == "SELECT COUNT(*) FROM cats;" and answer.refused is None
    assert answer.result.rows == [(0,)] and answer.transpiled == "SELECT COUNT(*) FROM cats"
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["pets.sqlite"]
    assert main(["ask", "--model", str(merged), "--db", str(db), "How many cats?"]) == 0
    out = capsys.readouterr().out
    assert "SELECT COUNT(*) FROM cats;" in out and "1 row(s) shown" in out


def test_ask_retries_sql_that_fails_on_the_database_with_beams(tmp_path, stop_trained):
    import sqlite3

    from gemsql.ask import ask

    merged, _ = stop_trained
    db = tmp_path / "shelter.sqlite"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE fish (name TEXT); CREATE TABLE birds (age INT);")
    con.close()
    before = db.read_bytes()
    greedy = ask(str(merged), "How many cats?", db=db)  # no cats here
    assert greedy.sql == "SELECT COUNT(*) FROM cats;" and greedy.result.error == "no such table: cats"
    guided = ask(str(merged), "How many cats?", db=db, guided_beams=4)
    assert guided.candidate >= 1 and guided.result.ok and guided.sql != greedy.sql, guided
    kept = ask(str(merged), "Oldest bird?", db=db, guided_beams=4)  # runs the first time: no retry
    assert (kept.candidate, kept.sql, kept.result.ok) == (0, "SELECT MAX(age) FROM birds;", True)
    assert db.read_bytes() == before


def test_ask_repairs_a_column_that_lives_one_foreign_key_away(tmp_path, stop_trained, capsys):
    import sqlite3

    merged, _ = stop_trained
    db = tmp_path / "aviary.sqlite"
    con = sqlite3.connect(db)  # empty tables: sample rows in the prompt would change what the tiny model writes
    con.executescript("CREATE TABLE birds (id INT); CREATE TABLE ages (bird_id INT REFERENCES birds(id), age INT);")
    con.close()
    before = db.read_bytes()
    ask = ["ask", "--model", str(merged), "--db", str(db), "--execution_guided_beams", "0"]
    assert main([*ask, "Oldest bird?"]) == 0  # the memorized answer asks birds for an age it does not have
    assert "error: no such column: age" in capsys.readouterr().out
    assert main([*ask, "--schema_repair", "true", "Oldest bird?"]) == 0
    out = capsys.readouterr().out
    assert "schema repair" in out and "JOIN ages AS J1 ON J1.bird_id = birds.id" in out, out
    assert "error" not in out and "1 row(s) shown" in out, out
    assert db.read_bytes() == before


def test_generate_command_for_one_question(tmp_path, tiny_model, capsys):
    assert main(["generate", "--model", str(tiny_model), "--question", "How many cats?",
                 "--schema", "CREATE TABLE cats (id INT);", "--max_new_tokens", "4"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["question"] == "How many cats?" and isinstance(line["sql"], str)
    assert line["stop_reason"] in ("<end_of_turn>", "<eos>", "statement", "length")
    assert main(["generate", "--model", str(tmp_path / "nope"), "--question", "q", "--schema", "s"]) == 2


def test_generation_stops_at_the_end_of_one_statement(tiny_model):
    """A row whose answer is a complete statement stops there, even without <end_of_turn>."""
    from transformers import AutoTokenizer

    from gemsql.generate import StatementEnd

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = tok("<bos>question", add_special_tokens=False).input_ids
    rows = [prompt + tok(text, add_special_tokens=False).input_ids for text in
            ("SELECT name FROM dogs;", "SELECT ';' FROM dogs", "SELECT name FROM dogs WHERE name = 'a;")]
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # right-padded only for this check
    done = StatementEnd(tok, len(prompt))(ids[:, : len(rows[0])], None)
    assert done.tolist()[0] is True
    # a ';' inside a string literal, closed or still open, ends nothing
    for k in (1, 2):
        assert StatementEnd(tok, len(prompt))(torch.tensor([rows[k]]), None).tolist() == [False]
    # the vocabulary is scanned for ';' once per tokenizer, not once per call (the server calls per batch)
    from gemsql.generate import semicolon_token_ids

    ids = semicolon_token_ids(tok)
    assert semicolon_token_ids(tok) is ids and all(";" in tok.convert_ids_to_tokens(int(i)) for i in ids)


def test_generate_command_for_a_file(tmp_path, tiny_model):
    from gemsql.files import read_jsonl

    questions = tmp_path / "questions.csv"
    questions.write_text("sql_prompt,sql_context\nHow many cats?,CREATE TABLE cats (id INT);\nList dogs.,CREATE TABLE dogs (name TEXT);\n")
    out = tmp_path / "predictions.jsonl"
    assert main(["generate", "--model", str(tiny_model), "--input", str(questions), "--output", str(out),
                 "--max_new_tokens", "4"]) == 0
    preds = read_jsonl(out)
    assert [p["question"] for p in preds] == ["How many cats?", "List dogs."] and all(p["sql"] is None for p in preds)
    # with gold SQL in the file, it is kept beside each prediction for `gemsql eval`
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"sql_prompt": "How many cats?", "sql_context": "CREATE TABLE cats (id INT);",
                                "sql": "SELECT COUNT(*) FROM cats;"}) + "\n")
    assert main(["generate", "--model", str(tiny_model), "--input", str(gold), "--output", str(out),
                 "--max_new_tokens", "4"]) == 0
    assert read_jsonl(out)[0]["sql"] == "SELECT COUNT(*) FROM cats;"
    # execution-guided decoding: each row says which candidate it took (0: the greedy answer)
    assert main(["generate", "--model", str(tiny_model), "--input", str(gold), "--output", str(out),
                 "--max_new_tokens", "4", "--execution_guided_beams", "2"]) == 0
    row = read_jsonl(out)[0]
    assert row["candidate"] in (0, 1, 2) and ("greedy_prediction" in row) == (row["candidate"] > 0)
    assert main(["generate", "--model", str(tiny_model), "--input", str(gold), "--output", str(out),
                 "--max_new_tokens", "4", "--execution_guided_beams", "2", "--execution_vote", "true"]) == 0
    row = read_jsonl(out)[0]
    assert row["candidate"] in (0, 1, 2) and ("greedy_prediction" in row) == (row["candidate"] > 0)
