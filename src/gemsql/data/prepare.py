"""`gemsql prepare`: rows -> seeded shuffle, sample and split -> chat messages -> run_dir/data/.

Rows longer than max_length (prompt + SQL, in tokens) are dropped and counted: cutting them would
cut the SQL answer, which comes last.
"""

from __future__ import annotations

import logging
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from gemsql.config import Config
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
    """Write train.jsonl, test.jsonl and stats.json under run_dir/data/ (all or nothing)."""
    from gemsql.model import load_tokenizer

    tokenizer = tokenizer or load_tokenizer(cfg.model)
    rows = load_rows(cfg.data, seed=cfg.train.seed)
    random.Random(cfg.train.seed).shuffle(rows)
    if cfg.data.num_rows:
        rows = rows[: cfg.data.num_rows]
    lengths = token_lengths(tokenizer, rows)
    kept = [(r, n) for r, n in zip(rows, lengths) if n <= cfg.train.max_length]
    dropped = len(rows) - len(kept)
    if dropped:
        log.warning("dropped %d of %d rows longer than max_length=%d tokens", dropped, len(rows), cfg.train.max_length)
    if len(kept) <= cfg.data.test_size:
        raise GemsqlError(
            f"only {len(kept)} rows fit max_length={cfg.train.max_length} ({dropped} dropped as too long), "
            f"not enough for test_size={cfg.data.test_size} plus training rows",
            file=cfg.data.dataset,
        )
    test, train = kept[: cfg.data.test_size], kept[cfg.data.test_size :]
    stats = {
        "source": cfg.data.dataset,
        "rows_sampled": len(rows),
        "rows_dropped_too_long": dropped,
        "max_length": cfg.train.max_length,
        "train": _length_stats([n for _, n in train]),
        "test": _length_stats([n for _, n in test]),
    }
    out = data_dir(cfg)
    with atomic_dir(out) as tmp:
        write_jsonl(tmp / "train.jsonl", (_record(r) for r, _ in train))
        write_jsonl(tmp / "test.jsonl", (_record(r) for r, _ in test))
        write_json(tmp / "stats.json", stats)
    log.info("prepared %d train / %d test rows in %s", len(train), len(test), out)
    return Prepared(out, out / "train.jsonl", out / "test.jsonl", stats)


def load_prepared(cfg: Config) -> Prepared:
    out = data_dir(cfg)
    if not (out / "stats.json").is_file():
        raise GemsqlError("no prepared data here; run `gemsql prepare` with this config first", file=str(out))
    import json

    return Prepared(out, out / "train.jsonl", out / "test.jsonl", json.loads((out / "stats.json").read_text()))


def _record(r: Row) -> dict:
    return {"messages": to_messages(r.question, r.context, r.sql), **asdict(r)}


def token_lengths(tokenizer, rows: list[Row]) -> list[int]:
    """Tokens of each full conversation as training sees it (chat template, BOS included)."""
    texts = [
        tokenizer.apply_chat_template(to_messages(r.question, r.context, r.sql), tokenize=False) for r in rows
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
