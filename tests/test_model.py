"""The real embedded Gemma 3 270M: conversion from its GGUF, tokenizer checks, a forward pass."""

import json

import pytest
import torch

from gemsql.config import ModelConfig
from gemsql.errors import GemsqlError
from gemsql.model import PROBE_SQL, check_tokenizer, load_tokenizer, model_class


def test_embedded_gguf_converts_to_a_working_model(embedded_model):
    from transformers import AutoModelForCausalLM

    assert (embedded_model / "config.json").is_file() and list(embedded_model.glob("*.safetensors"))
    config = json.loads((embedded_model / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["num_hidden_layers"] == 18
    assert "quantization_config" not in config  # dequantized: trainable and savable
    assert 106 in json.loads((embedded_model / "generation_config.json").read_text())["eos_token_id"]
    tok = load_tokenizer(ModelConfig(model_name_or_path=str(embedded_model)))
    ids = tok(PROBE_SQL).input_ids
    assert ids[0] == tok.bos_token_id == 2
    assert len(PROBE_SQL) / (len(ids) - 1) >= 3.0
    assert tok.convert_tokens_to_ids("<end_of_turn>") == 106
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert model_class(str(embedded_model)) is AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(embedded_model, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]))
    assert out.logits.shape == (1, len(ids), 262144)
    # a real language model predicts SQL better than chance: the mean token loss is far below ln(262144) = 12.5
    loss = torch.nn.functional.cross_entropy(out.logits[0, :-1].float(), torch.tensor(ids[1:]))
    assert loss < 5.0, loss


class _BrokenTokenizer:
    """What transformers 5.17 built from this GGUF: no BOS and a character-level split."""

    bos_token_id = 2
    unk_token_id = 3

    def __call__(self, text):
        class Out:
            input_ids = [ord(c) for c in text]

        return Out()


def test_a_wrong_tokenizer_is_refused():
    with pytest.raises(GemsqlError, match="BOS"):
        check_tokenizer(_BrokenTokenizer())


def test_unknown_model_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GemsqlError, match="cannot load model 'nobody/no-such-model'"):
        load_tokenizer(ModelConfig(model_name_or_path="nobody/no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GemsqlError, match="no config.json"):
        load_tokenizer(ModelConfig(model_name_or_path=str(tmp_path / "empty")))


def test_model_class_follows_the_architecture(tmp_path):
    """Gemma 3 270M/1B are causal LMs; 4B and larger checkpoints carry a vision tower (image-text class)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, Gemma3Config, Gemma3TextConfig

    Gemma3TextConfig(hidden_size=64, num_hidden_layers=1).save_pretrained(tmp_path / "text")
    Gemma3Config(text_config={"hidden_size": 64, "num_hidden_layers": 1}).save_pretrained(tmp_path / "multimodal")
    assert model_class(str(tmp_path / "text")) is AutoModelForCausalLM
    assert model_class(str(tmp_path / "multimodal")) is AutoModelForImageTextToText


def test_gradient_copy_keeps_accumulation_right_when_the_backward_buffer_is_overwritten():
    """Replayed as a CUDA graph, a backward hands out its gradient in the graphs' memory pool, autograd takes it as
    the weight's .grad, and the next micro-batch's replay writes over it (pytorch/pytorch#169545; the 270M stopped on
    the H200). Here a backward writes every gradient into one buffer and hands out an alias of it: without the copy
    two micro-batches accumulate to twice the second's gradient, with it (copy_grads_out_of_graphs) to their sum."""
    from gemsql.model import copy_grads_out_of_graphs

    buffer = torch.empty(4)

    class PoolBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x)
            return x * w

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            buffer.copy_((g * x).sum(0))
            return None, buffer.view(buffer.shape)  # a tensor of its own over the shared memory

    xs = [torch.randn(3, 4), torch.randn(3, 4)]

    def accumulated(copy: bool) -> torch.Tensor:
        module = torch.nn.Module()
        module.w = torch.nn.Parameter(torch.zeros(4))
        if copy:
            assert copy_grads_out_of_graphs(module) == 1
        for x in xs:
            PoolBackward.apply(x, module.w).sum().backward()
        return module.w.grad

    assert torch.allclose(accumulated(copy=False), 2 * xs[1].sum(0))  # the hazard the copy removes
    assert torch.allclose(accumulated(copy=True), xs[0].sum(0) + xs[1].sum(0))


def test_lean_recompute_keeps_selectives_marks_but_the_gates():
    """The policies of recompute selective and lean, one layer call each (Gemma 3's seven 4-bit matmuls in the order
    q, k, v, o, gate, up, down, and the attention between them), in the forward and again in the recompute: selective
    keeps the attention's output and every other matmul's, lean the same but the MLP's gate, the widest. That the
    compiled layers follow these marks is tested in test_pipeline.py (selective) and, by what they keep, in
    test_bench_tools.py (lean between full and selective)."""
    import importlib
    from types import SimpleNamespace

    from torch.utils.checkpoint import CheckpointPolicy

    from gemsql.model import LEAN, SELECTIVE, _ATTENTION_OPS, _keep_some

    importlib.import_module("bitsandbytes")  # registers its 4-bit matmul op, as loading a 4-bit model does
    gemm, attention = torch.ops.bitsandbytes.gemm_4bit.default, _ATTENTION_OPS[0]
    layer = [gemm, gemm, gemm, attention, gemm, torch.ops.aten.add.Tensor, gemm, gemm, gemm]
    save, again = CheckpointPolicy.MUST_SAVE, CheckpointPolicy.MUST_RECOMPUTE
    for keep, gate in ((SELECTIVE, save), (LEAN, again)):
        policy = _keep_some(keep)
        for recompute in (False, True):  # the recompute counts on its own: the same marks again
            marks = [policy(SimpleNamespace(is_recompute=recompute), op) for op in layer]
            assert marks == [save, again, save, save, again, again, gate, again, save], (keep, recompute, marks)
