"""A tiny random Gemma 3 (hidden 64, 2 layers) and a small tokenizer, both built at test time.

The tokenizer is a byte-level-free BPE of 2,048 tokens trained on gemsql's built-in data, with
Gemma's special tokens (<pad>=0, <eos>=1, <bos>=2, <unk>=3, <start_of_turn>, <end_of_turn>) and
Gemma 3's chat template. A 262k-token vocabulary would make the output head, not the model, the
cost of every CPU test; the real tokenizer is tested on the real model (test_model.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def make_tokenizer(dst: Path, vocab_size: int = 2048):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import gemma3_chat_template

    from gemsql.data.builtin import generate
    from gemsql.data.prompt import to_messages

    rows = generate(1500, seed=99)
    texts = [f"{r.question}\n{r.context}\n{r.sql}" for r in rows]
    texts += [m["content"] for r in rows[:50] for m in to_messages(r.question, r.context, r.sql)]
    texts += ["user\nmodel\n", "How many cats? List dog names. Oldest bird? CREATE TABLE cats dogs birds (id INT, name TEXT, age INT);"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    fast.chat_template = gemma3_chat_template
    fast.save_pretrained(dst)
    return fast


def make_tiny_model(dst: Path, seed: int = 0) -> Path:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig

    dst.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(dst)
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
    model = Gemma3ForCausalLM(config)
    # Embeddings of a trained model's scale (std 1/sqrt(hidden)): with the default 0.02 the tied output head caps
    # every logit near +-1.3, so a frozen random vocabulary could never be predicted confidently.
    torch.nn.init.normal_(model.model.embed_tokens.weight, std=config.hidden_size**-0.5)
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(dst)
    return dst
