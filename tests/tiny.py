"""A tiny random Gemma 3 (hidden 64, 2 layers) with the real Gemma 3 tokenizer, built at test time."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_model(dst: Path, tokenizer_src: Path, seed: int = 0) -> Path:
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig

    tok = AutoTokenizer.from_pretrained(tokenizer_src)
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        sliding_window=128,
        layer_types=["sliding_attention", "full_attention"],
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = Gemma3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id
    )
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst
