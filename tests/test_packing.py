"""Padding-free packing must not let examples attend to each other: per-example loss packed == alone."""

import torch


def test_packed_batch_loss_equals_unpacked(tiny_model):
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    examples = [torch.randint(10, 2000, (n,)).tolist() for n in (37, 80, 150)]  # 150 > sliding window 128
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    packed = collator([{"input_ids": e} for e in examples])
    assert packed["input_ids"].shape == (1, sum(map(len, examples)))
    with torch.no_grad():
        # as in training: no KV cache, so transformers builds a block-diagonal mask from the restarting position ids
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        start = 0
        for e in examples:
            alone = model(input_ids=torch.tensor([e])).logits[0]
            part = logits[start : start + len(e)]
            assert torch.allclose(part, alone, atol=1e-4), (len(e), (part - alone).abs().max())
            start += len(e)



def test_packing_leaks_without_restarting_positions(tiny_model):
    """Control: the same packed row with plain positions lets the second example attend to the first,
    so the equality above depends on the block-diagonal mask, not on luck."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    a, b = torch.randint(10, 2000, (40,)), torch.randint(10, 2000, (60,))
    with torch.no_grad():
        joined = model(input_ids=torch.cat([a, b])[None], use_cache=False).logits[0, 40:]
        alone = model(input_ids=b[None], use_cache=False).logits[0]
    assert not torch.allclose(joined, alone, atol=1e-2)


def test_padding_to_a_multiple_changes_no_real_token(tiny_model):
    """pad_to_multiple_of (fewer shapes for per-shape GPU kernels) pads the flattened batch at its end with
    positions that restart at 0 and labels -100: the real tokens' logits and loss are unchanged."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    rows = [{"input_ids": torch.randint(10, 2000, (n,)).tolist()} for n in (37, 80)]
    plain = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
    padded = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True, pad_to_multiple_of=64)(rows)
    assert plain["input_ids"].shape[1] == 117 and padded["input_ids"].shape[1] == 128
    assert (padded["labels"][0, 117:] == -100).all()
    with torch.no_grad():
        a = model(input_ids=plain["input_ids"], position_ids=plain["position_ids"], use_cache=False).logits[0]
        b = model(input_ids=padded["input_ids"], position_ids=padded["position_ids"], use_cache=False).logits[0, :117]
    assert torch.allclose(a, b, atol=1e-4)


def test_packed_rows_keep_each_example_to_itself(tiny_model):
    """gemsql's rows layout (PackedRows: one row per packed sequence, padded): every example's logits equal its logits
    alone, across rows of different lengths, padding to a multiple, and a sliding window (128) shorter than an example;
    labels drop the padding and each example's first token."""
    from transformers import AutoModelForCausalLM

    from gemsql.train import PackedRows

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    packs = [[torch.randint(10, 2000, (n,)).tolist() for n in lengths] for lengths in ((37, 150), (80,), (20, 30, 40))]
    rows = [{"input_ids": sum(p, []), "labels": sum(p, []), "seq_lengths": [len(e) for e in p]} for p in packs]
    batch = PackedRows(pad_token_id=0, pad_to_multiple_of=64)(rows)
    assert batch["input_ids"].shape == (3, 192) and "attention_mask" not in batch
    assert batch["position_ids"][0, 37].item() == 0 and batch["position_ids"][0, 36].item() == 36
    assert (batch["labels"][1, 80:] == -100).all() and (batch["input_ids"][1, 80:] == 0).all()
    assert batch["labels"][0, 0].item() == batch["labels"][0, 37].item() == -100
    assert batch["labels"][0, 38].item() == packs[0][1][1]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        for row, pack in enumerate(packs):
            start = 0
            for e in pack:
                alone = model(input_ids=torch.tensor([e])).logits[0]
                part = logits[row, start : start + len(e)]
                assert torch.allclose(part, alone, atol=1e-4), (row, len(e), (part - alone).abs().max())
                start += len(e)


def test_training_collates_packed_rows_where_the_mask_comes_from_positions(tmp_path, tiny_model):
    """The default (bfd packing, SDPA) trains on rows; FlashAttention, the tutorial's wrapped packing and
    packed_rows: false keep TRL's collator; a trained step counts every real token."""
    from gemsql.data import prepare
    from gemsql.train import PackedRows, packed_rows, setup
    from conftest import tiny_config

    cfg = tiny_config(tmp_path / "run", tiny_model, max_steps=-1, num_train_epochs=1, report_to="none",
                      pad_to_multiple_of=64)
    prepare(cfg)
    trainer, tokenizer = setup(cfg)
    assert isinstance(trainer.data_collator, PackedRows)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].shape[1] % 64 == 0
    trainer.train()  # one epoch: every packed token once, none of the padding
    assert trainer.state.num_input_tokens_seen == sum(len(e["input_ids"]) for e in trainer.train_dataset)
    for other in (dict(attn_implementation="flash_attention_2"), dict(packing_strategy="wrapped"),
                  dict(packed_rows=False)):
        assert not packed_rows(tiny_config(tmp_path / "other", tiny_model, **other))
