"""`gemsql generate`: batched greedy SQL generation from (question, schema) pairs.

Prompts are sorted by length so each batch pads little, left-padded so every row's answer starts at
the same position, and decoding stops per row at <eos> or <end_of_turn>.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import StoppingCriteriaList

from gemsql.data.prompt import user_message

log = logging.getLogger(__name__)


@dataclass
class Generation:
    sql: str
    raw: str
    new_tokens: int
    stop_reason: str  # "<end_of_turn>" or "<eos>" (the model ended its turn), "statement" (one complete SQL
    # statement, then cut), or "length" (max_new_tokens reached)

    @property
    def stopped(self) -> bool:
        return self.stop_reason != "length"


def load_for_generation(model_path: str, adapter: str | None = None, dtype: torch.dtype | None = None):
    """A model folder (merged or base), optionally with a LoRA adapter on top, and its tokenizer."""
    from gemsql.config import ModelConfig
    from gemsql.model import compute_dtype, load_tokenizer, model_class, resolve_model

    model_path = resolve_model(model_path)
    cfg = ModelConfig(model_name_or_path=model_path)
    tokenizer = load_tokenizer(cfg, path=adapter or model_path)
    dtype = dtype or compute_dtype(cfg)
    device_map = {"": torch.cuda.current_device()} if torch.cuda.is_available() else None
    model = model_class(model_path).from_pretrained(model_path, dtype=dtype, device_map=device_map)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model, tokenizer


_FENCE = re.compile(r"```(?:sql|sqlite)?\s*(.*?)(?:```|$)", re.S | re.I)


def extract_sql(text: str) -> str:
    """The SQL in a model answer: inside a code fence if there is one, without a leading 'SQL:' label."""
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    text = text.strip()
    text = re.sub(r"^(?:sql|answer)\s*:\s*", "", text, flags=re.I)
    return text.strip()


class StatementEnd:
    """Stopping criterion: a row is done once its answer is one complete SQL statement.

    A batch decodes until its slowest row stops, so one answer that never emits <end_of_turn> used to keep
    every row of its batch decoding to max_new_tokens. Only rows whose last token holds a ';' are decoded
    and checked (sqlite3.complete_statement respects quotes and comments).
    """

    def __init__(self, tokenizer, prompt_width: int, semicolon_ids: torch.Tensor | None = None):
        self.tokenizer, self.start = tokenizer, prompt_width
        self.ids = semicolon_token_ids(tokenizer) if semicolon_ids is None else semicolon_ids

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.start:
            return done
        hits = torch.isin(input_ids[:, -1], self.ids.to(input_ids.device)).nonzero().flatten().tolist()
        for row in hits:
            text = self.tokenizer.decode(input_ids[row, self.start :], skip_special_tokens=True)
            done[row] = sqlite3.complete_statement(text)
        return done


def semicolon_token_ids(tokenizer) -> torch.Tensor:
    """Every vocabulary entry that contains a ';' (one scan of the vocabulary)."""
    return torch.tensor([i for t, i in tokenizer.get_vocab().items() if ";" in t])


@torch.inference_mode()
def generate_sql(
    model, tokenizer, pairs: list[tuple[str, str]], *, max_new_tokens: int = 256, batch_size: int = 16,
    stop_at_statement_end: bool = True, progress: bool = True,
) -> list[Generation]:
    """Greedy SQL for each (question, context) pair, in input order."""
    from gemsql.model import stop_token_ids

    prompts = [
        tokenizer.apply_chat_template([user_message(q, c)], tokenize=False, add_generation_prompt=True) for q, c in pairs
    ]
    encoded = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    stops = stop_token_ids(tokenizer)
    semicolons = semicolon_token_ids(tokenizer) if stop_at_statement_end else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    results: list[Generation | None] = [None] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    started = time.perf_counter()
    for b, batch in enumerate(batches, start=1):
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=pad,
            stopping_criteria=StoppingCriteriaList(
                [StatementEnd(tokenizer, width, semicolons)] if stop_at_statement_end else []
            ),
        )
        for row, i in enumerate(batch):
            new = out[row, width:].tolist()
            ended = sorted((new.index(t), t) for t in stops if t in new)
            if ended:
                new = new[: ended[0][0]]
            while new and new[-1] == pad:  # rows that finished early are padded to the batch's length
                new.pop()
            raw = tokenizer.decode(new, skip_special_tokens=True)
            if ended:
                reason = tokenizer.convert_ids_to_tokens(ended[0][1])
            else:
                reason = "statement" if stop_at_statement_end and sqlite3.complete_statement(raw) else "length"
            results[i] = Generation(extract_sql(raw), raw, len(new), reason)
        if progress:
            done = sum(len(x) for x in batches[:b])
            log.info("generated %d/%d (%.1f examples/s)", done, len(prompts), done / (time.perf_counter() - started))
    return results  # type: ignore[return-value]


def generate(
    model: str,
    *,
    adapter: str | None = None,
    pairs: list[tuple[str, str]],
    output: str | Path | None = None,
    extra: list[dict] | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    stop_at_statement_end: bool = True,
) -> list[Generation]:
    """Generate for `pairs` and, with `output`, write one JSONL row per pair (all or nothing).

    Each row holds the pair's question and context unless `extra` gives its own (a test row keeps
    its full context for execution while the prompt showed a shortened one)."""
    from gemsql.files import write_jsonl

    m, tok = load_for_generation(model, adapter)
    gens = generate_sql(m, tok, pairs, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        stop_at_statement_end=stop_at_statement_end)
    if output is not None:
        extra = extra or [{} for _ in pairs]
        write_jsonl(
            output,
            (
                {"question": q, "context": c, **x, "prompt_context": c, "prediction": g.sql, "raw": g.raw, "stop_reason": g.stop_reason,
                 "new_tokens": g.new_tokens}
                for (q, c), g, x in zip(pairs, gens, extra)
            ),
        )
    return gens
