"""Shared fixtures: the real embedded model (converted once per session) and a tiny random Gemma 3."""

from __future__ import annotations

import json
import os
import socket
import sys
from types import SimpleNamespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download


@pytest.fixture(scope="session")
def embedded_model(tmp_path_factory) -> Path:
    """The real Gemma 3 270M, converted from its GGUF into a fresh cache (about a minute on 2 cores)."""
    cache = tmp_path_factory.mktemp("gemsql-cache")
    old = os.environ.get("GEMSQL_CACHE")
    os.environ["GEMSQL_CACHE"] = str(cache)
    try:
        from gemsql.model import resolve_model

        path = Path(resolve_model("gemma-3-270m"))
    finally:
        if old is None:
            os.environ.pop("GEMSQL_CACHE")
        else:
            os.environ["GEMSQL_CACHE"] = old
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random Gemma 3 text model, hidden size 64 and 2 layers, with a small Gemma-style tokenizer."""
    from tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def tiny_config(run_dir: Path, model: Path, **overrides):
    """A config for fast CPU runs on the tiny model; `overrides` as in YAML."""
    from gemsql.config import load_config

    values = dict(
        model_name_or_path=str(model),
        output_dir=str(run_dir),
        dataset="builtin",
        num_rows=40,
        test_size=8,
        quantization="none",
        max_length=256,
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        max_new_tokens=16,
        generation_batch_size=8,
    )
    values.update(overrides)
    return load_config(None, **values)


STOP_ROWS = [
    {"sql_prompt": "How many cats?", "sql_context": "CREATE TABLE cats (id INT);", "sql": "SELECT COUNT(*) FROM cats;"},
    {"sql_prompt": "List dog names.", "sql_context": "CREATE TABLE dogs (name TEXT);", "sql": "SELECT name FROM dogs;"},
    {"sql_prompt": "Oldest bird?", "sql_context": "CREATE TABLE birds (age INT);", "sql": "SELECT MAX(age) FROM birds;"},
]


@pytest.fixture(scope="session")
def stop_trained(tmp_path_factory, tiny_model):
    """The tiny model trained to memorize STOP_ROWS: (merged model folder, adapter folder)."""
    from gemsql.data import prepare
    from gemsql.merge import merge
    from gemsql.train import train

    tmp = tmp_path_factory.mktemp("stop")
    data = tmp / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in STOP_ROWS * 12))
    cfg = tiny_config(tmp / "run", tiny_model, dataset=str(data), num_rows=0, test_size=3, max_steps=120,
                      learning_rate=1e-2, max_grad_norm=1.0, per_device_train_batch_size=4, lora_dropout=0.0,
                      max_new_tokens=24)
    prepare(cfg)
    result = train(cfg)
    return merge(cfg), result.trained_dir


class CharTokenizer:
    """One token per character: enough to exercise prompt budgets without a model."""

    def __call__(self, text, add_special_tokens=False):
        return SimpleNamespace(input_ids=list(text))


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
