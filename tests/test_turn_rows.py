"""gemsql.model.turn_rows (turn_rows_as_columns): the turn tokens' head rows trained as hidden-state columns against a
frozen head give the loss, gradients, logits and adapter of PEFT's merged-weight head, with no head weight gradient."""

import pytest
import torch
from conftest import tiny_config

from gemsql.errors import GemsqlError

ROWS = [5, 7]


def _model(tiny_model, columns: bool):
    """The tiny model as setup builds it for turn_tokens (LoRA, PEFT's trainable rows, TRL's fused head), the rows
    moved off their start so that their gradient is not the untrained one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from gemsql.model.turn_rows import train_rows_as_columns
    from gemsql.train import _expose_head_bias

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM",
                                            trainable_token_indices={"embed_tokens": ROWS}))
    _expose_head_bias(model)
    with torch.no_grad():
        _rows(model).add_(0.3)
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs",))
    if columns:
        train_rows_as_columns(model)
    return model


def _rows(model):
    return model.get_base_model().get_input_embeddings().token_adapter.trainable_tokens_delta["default"]


def test_rows_as_columns_train_like_the_merged_head(tiny_model, tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(0, 2048, (2, 40))
    ids[:, 10], ids[:, 20] = ROWS  # the rows are targets too: their own term of the gradient counts
    seen = {}
    for columns in (False, True):
        model = _model(tiny_model, columns)
        head = model.get_base_model().get_output_embeddings()
        loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
        loss.backward()
        lora = next(p for n, p in model.named_parameters() if "lora_B" in n)
        logits = model(input_ids=ids).logits.detach()  # the unfused path (evaluation, generation)
        model.save_pretrained(tmp_path / str(columns))
        seen[columns] = loss.item(), _rows(model).grad.clone(), lora.grad.clone(), logits, head.weight.requires_grad
    merged, moved = seen[False], seen[True]
    assert merged[4] and not moved[4]  # the loss is handed a head that needs no gradient
    assert moved[0] == pytest.approx(merged[0], rel=1e-6)
    assert torch.allclose(moved[1], merged[1], atol=1e-6) and merged[1].abs().sum() > 0
    assert torch.allclose(moved[2], merged[2], atol=1e-6)
    assert torch.allclose(moved[3], merged[3], atol=1e-4)
    # the adapter saved is PEFT's own: the same tensors under the same names
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / str(c) / "adapter_model.safetensors") for c in (False, True))
    assert a.keys() == b.keys() and any("trainable_tokens" in k for k in a)
    # the widened head: the hidden size plus the two scores, rounded up to a multiple of 8
    assert model.get_base_model().get_output_embeddings().weight.shape == (2048, 72)


def test_rows_as_columns_needs_the_turn_rows_and_trains_in_setup(tiny_model, tmp_path):
    """The setting is refused without the rows it moves; with them a run trains to the merged head's losses and
    writes the same adapter tensors (what merge and serve load)."""
    from safetensors.torch import load_file

    from gemsql.data import prepare
    from gemsql.train import cleanup, setup

    with pytest.raises(GemsqlError) as e:
        tiny_config(tmp_path / "none", tiny_model, turn_rows_as_columns=True, stop_token_training="none")
    assert e.value.field == "turn_rows_as_columns"
    losses, adapters = {}, {}
    for columns in (False, True):
        cfg = tiny_config(tmp_path / str(columns), tiny_model, turn_rows_as_columns=columns, max_steps=3,
                          report_to="none", lora_dropout=0.0)
        prepare(cfg)
        trainer, tokenizer = setup(cfg)
        assert trainer.model.get_base_model().get_output_embeddings().weight.requires_grad is not columns
        result = trainer.train()
        losses[columns] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        saved = cleanup(cfg, trainer, tokenizer, result).trained_dir / "adapter_model.safetensors"
        adapters[columns] = {k: v.shape for k, v in load_file(saved).items()}
    assert adapters[True] == adapters[False]
    # the first step's loss is the same; after it Adam scales each gradient entry to about the learning rate, so
    # entries near zero that differ only in rounding move the weights a little apart (the gradients themselves agree
    # to 1e-6: the test above)
    assert len(losses[True]) == 3 and losses[True][0] == pytest.approx(losses[False][0], rel=1e-6)
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def test_rows_as_columns_are_refused_where_the_row_parameter_is_not_held(tiny_model, tmp_path, monkeypatch):
    """FSDP and DeepSpeed replace PEFT's row parameter with shards of their own, and Liger's kernels patch the final
    norm by name as training starts (both refused before anything loads); an image-text model nests its text model's
    final norm (refused by name)."""
    from types import SimpleNamespace

    from gemsql.model.turn_rows import train_rows_as_columns
    from gemsql.train import _check_engine

    cfg = tiny_config(tmp_path, tiny_model, turn_rows_as_columns=True)
    _check_engine(cfg)  # alone: allowed
    for engine in ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, {"ACCELERATE_USE_DEEPSPEED": "true"}):
        with monkeypatch.context() as m:
            for k, v in engine.items():
                m.setenv(k, v)
            with pytest.raises(GemsqlError) as e:
                _check_engine(cfg)
            assert e.value.field == "turn_rows_as_columns"
    with pytest.raises(GemsqlError, match="use_liger_kernel false") as e:
        _check_engine(tiny_config(tmp_path, tiny_model, turn_rows_as_columns=True, use_liger_kernel=True))
    assert e.value.field == "turn_rows_as_columns"
    image_text = SimpleNamespace(get_base_model=lambda: SimpleNamespace(model=SimpleNamespace(language_model=None)))
    with pytest.raises(GemsqlError, match="text-only models") as e:
        train_rows_as_columns(image_text)
    assert e.value.field == "turn_rows_as_columns"
