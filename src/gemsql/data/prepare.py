"""`gemsql prepare`: rows -> seeded shuffle, sample and split -> chat messages -> run_dir/data/.

Training rows longer than max_length (prompt + SQL, in tokens) are dropped and counted: cutting them
would cut the SQL answer, which comes last. Test rows are kept whole: dropping the long ones would
flatter the evaluation.
"""

from __future__ import annotations

import logging
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from gemsql.config import Config, DataConfig
from gemsql.data.prompt import to_messages
from gemsql.data.sources import Row, load_rows
from gemsql.errors import GemsqlError
from gemsql.files import atomic_dir, write_json, write_jsonl

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    dir: Path
    train: Path
    test: Path
    stats: dict


def data_dir(cfg: Config) -> Path:
    return cfg.run_dir / "data"


def prepare(cfg: Config, tokenizer=None) -> Prepared:
    """Write train.jsonl, test.jsonl and stats.json under run_dir/data/ (all or nothing).

    Under a launcher (torchrun, accelerate) rank 0 prepares while the others wait, then read its files."""
    from gemsql.distributed import is_main, main_first

    with main_first():
        return _prepare(cfg, tokenizer) if is_main() else load_prepared(cfg)


def _prepare(cfg: Config, tokenizer=None) -> Prepared:
    from gemsql.model import load_tokenizer

    tokenizer = tokenizer or load_tokenizer(cfg.model)
    rows = load_rows(cfg.data, seed=cfg.train.seed)
    random.Random(cfg.train.seed).shuffle(rows)
    if cfg.data.num_rows:
        rows = rows[: cfg.data.num_rows]
    blocks = _prompt_blocks(rows, cfg.data)
    lengths = token_lengths(tokenizer, rows, ["\n".join(b) for b in blocks])  # an order changes no token count
    test, train = split(list(zip(rows, blocks, lengths)), cfg.data)
    # Test rows stay whole (generation has no max_length); training drops what it would have to cut.
    fits = [item for item in train if item[2] <= cfg.train.max_length]
    dropped = len(train) - len(fits)
    if dropped:
        log.warning("dropped %d of %d training rows longer than max_length=%d tokens",
                    dropped, len(train), cfg.train.max_length)
    train = fits[: cfg.data.max_train_rows or None]
    if not train:
        raise GemsqlError(
            f"no training rows left: {dropped} of them are longer than max_length={cfg.train.max_length} tokens "
            f"and test_size={cfg.data.test_size} takes the rest",
            file=cfg.data.dataset,
        )
    stats = {
        "source": cfg.data.dataset,
        "rows_sampled": len(rows),
        "train_rows_dropped_too_long": dropped,
        "max_length": cfg.train.max_length,
        "train": _length_stats([n for *_, n in train]),
        "test": _length_stats([n for *_, n in test]),
    }
    if cfg.data.split_by:
        stats["split_by"] = cfg.data.split_by
        stats["test_groups"] = sorted({str(r.metadata[cfg.data.split_by]) for r, *_ in test})
    out = data_dir(cfg)
    with atomic_dir(out) as tmp:
        rng = random.Random(cfg.train.seed) if cfg.data.schema_shuffle else None  # training rows only
        write_jsonl(tmp / "train.jsonl", (_record(r, "\n".join(rng.sample(b, len(b)) if rng else b))
                                          for r, b, _ in train))
        write_jsonl(tmp / "test.jsonl", (_record(r, "\n".join(b)) for r, b, _ in test))
        write_json(tmp / "stats.json", stats)
    log.info("prepared %d train / %d test rows in %s", len(train), len(test), out)
    return Prepared(out, out / "train.jsonl", out / "test.jsonl", stats)


def load_prepared(cfg: Config) -> Prepared:
    out = data_dir(cfg)
    if not (out / "stats.json").is_file():
        raise GemsqlError("no prepared data here; run `gemsql prepare` with this config first", file=str(out))
    import json

    return Prepared(out, out / "train.jsonl", out / "test.jsonl", json.loads((out / "stats.json").read_text()))


def split(rows: list, cfg: DataConfig) -> tuple[list, list]:
    """(test, train) from shuffled rows: the first test_size rows, or with `split_by`, whole groups (in
    their shuffled order of first appearance) until the test split holds at least test_size rows and
    min_test_groups groups."""
    if not cfg.split_by:
        if len(rows) <= cfg.test_size:
            raise GemsqlError(f"{len(rows)} rows are not enough for test_size={cfg.test_size} plus training rows",
                              field="test_size")
        return rows[: cfg.test_size], rows[cfg.test_size :]
    groups: dict[str, list] = {}
    for item in rows:
        groups.setdefault(str(item[0].metadata[cfg.split_by]), []).append(item)
    test_groups: set[str] = set()
    held = 0
    for name, members in groups.items():
        if held >= cfg.test_size and len(test_groups) >= cfg.min_test_groups:
            break
        test_groups.add(name)
        held += len(members)
    if len(test_groups) == len(groups):
        raise GemsqlError(
            f"test_size={cfg.test_size} takes every '{cfg.split_by}' group ({len(groups)}), leaving none to train on",
            field="test_size",
        )
    test = [item for item in rows if str(item[0].metadata[cfg.split_by]) in test_groups]
    train = [item for item in rows if str(item[0].metadata[cfg.split_by]) not in test_groups]
    return test, train


def prompt_contexts(rows: list[Row], cfg: DataConfig) -> list[str]:
    """The context each prompt shows: as given, or CREATE statements + a few rows (`schema_sample_rows`)."""
    return ["\n".join(b) for b in _prompt_blocks(rows, cfg)]


def _prompt_blocks(rows: list[Row], cfg: DataConfig) -> list[list[str]]:
    """`prompt_contexts` as blocks: the context as given (one block), or one block per table or view."""
    if cfg.schema_sample_rows < 0:
        return [[r.context] for r in rows]
    from gemsql.data.schema import context_blocks

    cache: dict[str, list[str]] = {}  # paraphrased twins share one context
    shown = []
    for r in rows:
        if r.context not in cache:
            try:
                cache[r.context] = context_blocks(r.context, cfg.schema_sample_rows)
            except Exception as e:  # sqlite3 errors and sandbox limits alike: the context is unusable
                raise GemsqlError(f"the context does not run in SQLite: {e}", file=cfg.dataset, row=r.row,
                                  field=cfg.context_column) from None
        shown.append(cache[r.context])
    return shown


def _record(r: Row, shown: str) -> dict:
    """A training/test row: the chat messages, the row itself (full context, for execution) and the
    context the prompt shows."""
    return {"messages": to_messages(r.question, shown, r.sql), **asdict(r), "prompt_context": shown}


def token_lengths(tokenizer, rows: list[Row], contexts: list[str] | None = None) -> list[int]:
    """Tokens of each full conversation as training sees it (chat template, BOS included)."""
    contexts = contexts if contexts is not None else [r.context for r in rows]
    texts = [
        tokenizer.apply_chat_template(to_messages(r.question, c, r.sql), tokenize=False)
        for r, c in zip(rows, contexts)
    ]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


def _length_stats(lengths: list[int]) -> dict:
    if not lengths:
        return {"rows": 0}
    ordered = sorted(lengths)
    return {
        "rows": len(ordered),
        "tokens": sum(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }
