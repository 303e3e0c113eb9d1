from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from gemsql.cli import main
from gemsql.config import Config, load_config, parse_config
from gemsql.errors import GemsqlError

ROOT = Path(__file__).parent.parent


def test_defaults_are_the_tutorials_recipe_but_the_batch():
    c = Config()
    assert (c.data.num_rows, c.data.test_size) == (12500, 2500)
    assert (c.model.quantization, c.model.bnb_4bit_quant_type, c.model.bnb_4bit_use_double_quant) == ("4bit", "nf4", True)
    assert (c.model.lora_r, c.model.lora_alpha, c.model.lora_dropout, c.model.lora_target_modules) == (16, 16, 0.05, "all-linear")
    t = c.train
    assert (t.max_length, t.packing, t.num_train_epochs) == (512, True, 3.0)
    # 16 sequences of 512 a step in one micro-batch, where the tutorial takes 1 x 4; its learning rate scaled by the
    # square root of the 4x batch (the H200's one-epoch comparison in docs/benchmarks.md); recompute decided by where
    # the layers run (test_recompute_by_default_where_partial_recompute_applies)
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps) == (16, 1)
    assert (t.gradient_checkpointing, t.recompute, t.torch_compile_mode) == (None, None, None)
    assert (t.optim, t.learning_rate, t.lr_scheduler_type, t.warmup_steps, t.max_grad_norm) == (
        "adamw_torch_fused", 4e-4, "constant", 0.03, 0.3)
    assert (t.logging_steps, t.save_strategy, t.report_to, t.push_to_hub) == (10, "epoch", "tensorboard", False)


def test_tutorial_yaml_holds_the_tutorial_values():
    c = load_config(ROOT / "configs/gemma3-1b-tutorial.yaml")
    assert c.data.dataset == "philschmid/gretel-synthetic-text-to-sql"
    assert (c.data.question_column, c.data.context_column, c.data.sql_column) == ("sql_prompt", "sql_context", "sql")
    assert c.model.model_name_or_path == "google/gemma-3-1b-pt"
    assert c.model.stop_token_training == "full_embeddings"  # lm_head + embed_tokens saved in full
    assert c.train.learning_rate == 2e-4 and c.train.warmup_steps == 0.03 and c.train.max_grad_norm == 0.3
    assert c.train.num_train_epochs == 3 and c.train.gradient_accumulation_steps == 4
    assert c.train.per_device_train_batch_size == 1 and c.train.gradient_checkpointing


def test_quickstart_yaml_is_offline():
    c = load_config(ROOT / "configs/quickstart.yaml")
    assert c.data.dataset == "builtin" and c.model.model_name_or_path == "gemma-3-270m"


def test_cli_flags_override_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"learning_rate": "1e-4", "lora_r": 8, "output_dir": "x"}))
    c, _, rest = parse_config(["--config", str(path), "--lora_r", "32"])
    assert c.model.lora_r == 32 and c.train.learning_rate == 1e-4 and c.train.output_dir == "x" and rest == []


def test_saved_config_round_trips(tmp_path):
    c = load_config(None, lora_r=4, metadata_columns=["domain"], learning_rate=3e-4)
    c.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == c


@pytest.mark.parametrize(
    "values, field",
    [
        ({"lora_r": 0}, "lora_r"),
        ({"lora_r": True}, "lora_r"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"quantization": "8bit"}, "quantization"),
        ({"recompute": "half"}, "recompute"),  # a choice or unset (null)
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing"),
        ({"finetuning": "full"}, "finetuning"),  # over the 4-bit base (the default quantization)
        ({"finetuning": "everything", "quantization": "none"}, "finetuning"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"num_rows": 100, "test_size": 100}, "test_size"),
        ({"max_length": 4}, "max_length"),
        ({"fsdp_layers_per_unit": 0}, "fsdp_layers_per_unit"),
        ({"push_to_hub": True}, "hub_model_id"),
        ({"pad_to_multiple_of": 0}, "pad_to_multiple_of"),
        ({"execution_guided_beams": 1}, "execution_guided_beams"),
        ({"execution_vote": True, "execution_guided_beams": 0}, "execution_vote"),
        ({"retry_empty_results": True, "execution_guided_beams": 0}, "retry_empty_results"),
        ({"retry_empty_results": True, "execution_vote": True}, "retry_empty_results"),
    ],
)
def test_bad_values_name_their_field(tmp_path, values, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(GemsqlError) as e:
        load_config(path)
    assert f"field '{field}'" in str(e.value) and str(path) in str(e.value)


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lerning_rate: 1e-4\n")
    with pytest.raises(GemsqlError, match="lerning_rate"):
        load_config(path)


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_r: -3\n")
    assert main(["prepare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "lora_r" in err and str(bad) in err and "Traceback" not in err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["prepare", "--no_such_flag", "1"]) == 2
    assert "--no_such_flag" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_help_shows_field_docs(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "LoRA rank" in out and "--learning_rate" in out and "Peak learning rate" in out


@pytest.mark.parametrize("error", ["cuda", "host"])
def test_out_of_memory_names_the_settings_to_lower(monkeypatch, capsys, error):
    import torch

    import gemsql.data

    def exhausted(cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") if error == "cuda" else MemoryError()

    monkeypatch.setattr(gemsql.data, "prepare", exhausted)
    assert main(["prepare", "--output_dir", "unused"]) == 3
    err = capsys.readouterr().err
    assert "out of" in err and "per_device_train_batch_size" in err and "gradient_checkpointing" in err
    assert "recompute: full" in err  # on a GPU recompute is on by default, leanly: full saves the most
    assert "Traceback" not in err


def test_liger_defaults_to_on_only_where_its_kernels_run(monkeypatch):
    import torch

    from gemsql.train import use_liger

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert use_liger(load_config(None)) is False  # the CPU: Triton kernels cannot run
    assert use_liger(load_config(None, use_liger_kernel=True)) is True  # an explicit choice is kept
    c, _, _ = parse_config(["--use_liger_kernel", "false"])
    assert c.train.use_liger_kernel is False


def test_ddp_skips_its_unused_weight_search_for_text_models_only():
    from types import SimpleNamespace

    from transformers import Gemma3Config, Gemma3TextConfig

    from gemsql.train import ddp_settings

    text, image_text = SimpleNamespace(config=Gemma3TextConfig()), SimpleNamespace(config=Gemma3Config())
    assert ddp_settings(load_config(None), text) == (False, False)
    # text-only training leaves a vision tower's weights without gradients: DDP must look for them
    assert ddp_settings(load_config(None), image_text) == (True, False)
    c, _, _ = parse_config(["--ddp_find_unused_parameters", "true", "--ddp_broadcast_buffers", "true"])
    assert ddp_settings(c, text) == (True, True)  # an explicit choice is kept
    assert ddp_settings(load_config(None, ddp_find_unused_parameters=False), image_text)[0] is False


def test_recompute_reaches_the_trainer_under_its_current_name(tmp_path):
    import warnings

    from gemsql.train import sft_config

    for recompute, on in ((True, True), (False, False), (None, False)):  # None: off by default on the CPU
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args = sft_config(load_config(None, gradient_checkpointing=recompute), tmp_path)
        assert args.activation_checkpointing is on and args.gradient_checkpointing is on
        assert not [w for w in caught if "gradient_checkpointing" in str(w.message)]  # no deprecated alias used


def test_pad_to_multiple_of_defaults_to_128_on_a_gpu_only(tmp_path, monkeypatch):
    import torch

    from gemsql.train import GPU_PAD_MULTIPLE, pad_multiple, sft_config

    assert sft_config(load_config(None), tmp_path).pad_to_multiple_of is None  # the CPU: padding would only add work
    c, _, _ = parse_config(["--pad_to_multiple_of", "64"])
    assert sft_config(c, tmp_path).pad_to_multiple_of == 64  # an explicit multiple reaches TRL's collator
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pad_multiple(load_config(None)) == GPU_PAD_MULTIPLE == 128
    assert pad_multiple(load_config(None, pad_to_multiple_of=1)) is None  # 1 turns it off, on a GPU too
    assert pad_multiple(c) == 64


def test_spider_configs_hold_out_databases_and_share_one_split():
    ours, tutorial = load_config(ROOT / "configs/spider.yaml"), load_config(ROOT / "configs/spider-tutorial.yaml")
    for c in (ours, tutorial):
        assert (c.data.split_by, c.data.min_test_groups, c.data.test_size) == ("domain", 16, 1000)
    # same rows, so the recipes compare like for like; gemsql's recipe shuffles the tables of its training prompts
    assert replace(ours.data, schema_shuffle=False) == tutorial.data and ours.data.schema_shuffle
    assert tutorial.train.gradient_checkpointing and tutorial.model.stop_token_training == "full_embeddings"


def test_recompute_by_default_where_partial_recompute_applies():
    """gradient_checkpointing by default: on, recomputing leanly, where the layers are compiled over 4-bit matmuls (on
    the H200: the 270M's, 1B's and 4B's peaks under the tutorial's at 0.93x to 0.97x selective's tokens/s); off where
    recompute would mean every op (uncompiled layers, no 4-bit matmuls to keep). Set either way, it is as set, and
    recompute by default is lean only where it applies."""
    from gemsql.train import recompute_mode

    def mode(**values):
        return recompute_mode(load_config(None, **values))

    assert mode() is None  # this CPU: layers not compiled by default
    assert mode(torch_compile=True) == "lean"  # quantization 4bit is the default
    assert mode(torch_compile=True, quantization="none") is None
    assert mode(torch_compile=True, gradient_checkpointing=False) is None
    assert mode(torch_compile=True, recompute="full") == "full"
    assert mode(torch_compile=True, quantization="none", gradient_checkpointing=True) == "full"
    assert mode(gradient_checkpointing=True) == "full"  # uncompiled: transformers' checkpointing, every op
    assert mode(gradient_checkpointing=True, recompute="selective") == "selective"  # as set (setup warns)
    tutorial = load_config(ROOT / "configs/gemma3-1b-tutorial.yaml", torch_compile=True)
    assert recompute_mode(tutorial) == "full"  # the tutorial recomputes every op, compiled or not
