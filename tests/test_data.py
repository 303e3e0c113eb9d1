import csv
import json
import sqlite3
from collections import Counter

import pytest

from gemsql.config import DataConfig
from gemsql.data.builtin import generate
from gemsql.data.prompt import to_messages
from gemsql.data.sources import load_rows
from gemsql.errors import GemsqlError
from gemsql.files import read_jsonl


def test_every_builtin_gold_query_executes_on_its_context():
    rows = generate(600, seed=7)
    for r in rows:
        con = sqlite3.connect(":memory:")
        con.executescript(r.context)
        cur = con.execute(r.sql)
        if r.metadata["sql_task_type"] == "data manipulation":
            assert cur.rowcount > 0, r
        else:
            assert cur.fetchall(), r  # a gold that returns nothing would make execution accuracy meaningless
        con.close()


def test_builtin_is_deterministic_and_varied():
    a, b = generate(300, seed=1), generate(300, seed=1)
    assert [(r.question, r.context, r.sql) for r in a] == [(r.question, r.context, r.sql) for r in b]
    assert [r.sql for r in generate(300, seed=2)] != [r.sql for r in a]
    complexity = Counter(r.metadata["sql_complexity"] for r in a)
    assert set(complexity) == {"basic SQL", "aggregation", "single join", "subqueries"}
    assert len({r.metadata["domain"] for r in a}) >= 6
    sql = " ".join(r.sql for r in a)
    for construct in ("GROUP BY", "HAVING", "JOIN", "ORDER BY", "LIMIT", "(SELECT", "BETWEEN", "UPDATE", "DELETE"):
        assert construct in sql, construct
    assert len({r.question for r in a}) > 150  # phrasings and values vary


def test_messages_use_the_tutorial_template():
    user, assistant = to_messages("How many?", "CREATE TABLE t (a INT);", "SELECT COUNT(*) FROM t;")
    assert user["role"] == "user" and assistant == {"role": "assistant", "content": "SELECT COUNT(*) FROM t;"}
    assert "<SCHEMA>\nCREATE TABLE t (a INT);\n</SCHEMA>" in user["content"]
    assert "<USER_QUERY>\nHow many?\n</USER_QUERY>" in user["content"]


ROWS = [
    {"q": "How many rows?", "ctx": "CREATE TABLE t (a INT);", "answer": "SELECT COUNT(*) FROM t;", "level": "easy"},
    {"q": "Largest a?", "ctx": "CREATE TABLE t (a INT);", "answer": "SELECT MAX(a) FROM t;", "level": "easy"},
]
MAPPING = dict(question_column="q", context_column="ctx", sql_column="answer", metadata_columns=["level"])


def _write(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_local_files_with_a_column_mapping(tmp_path, suffix):
    path = _write(tmp_path / f"d{suffix}", ROWS)
    rows = load_rows(DataConfig(dataset=str(path), **MAPPING), seed=0)
    assert [(r.question, r.sql, r.metadata) for r in rows] == [
        ("How many rows?", "SELECT COUNT(*) FROM t;", {"level": "easy"}),
        ("Largest a?", "SELECT MAX(a) FROM t;", {"level": "easy"}),
    ]


@pytest.mark.parametrize(
    "rows, message, row, field",
    [
        ([{"q": "x", "ctx": "c"}], "column missing", 1, "answer"),
        ([ROWS[0], {"q": "x", "ctx": "c", "answer": None}], "missing or null", 2, "answer"),
        ([ROWS[0], ROWS[1], {"q": "", "ctx": "c", "answer": "SELECT 1"}], "empty", 3, "q"),
        ([{"q": 5, "ctx": "c", "answer": "SELECT 1"}], "must be text", 1, "q"),
    ],
)
def test_bad_rows_name_file_row_and_field(tmp_path, rows, message, row, field):
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(GemsqlError) as e:
        load_rows(DataConfig(dataset=str(path), question_column="q", context_column="ctx", sql_column="answer"), seed=0)
    text = str(e.value)
    assert str(path) in text and f"row {row}" in text and f"field '{field}'" in text and message in text


def test_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(GemsqlError, match="file not found"):
        load_rows(DataConfig(dataset=str(tmp_path / "nope.jsonl")), seed=0)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(GemsqlError, match="no rows"):
        load_rows(DataConfig(dataset=str(empty)), seed=0)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"sql_prompt": "a"}\n{not json\n')
    with pytest.raises(GemsqlError, match=r"row 2.*not valid JSON"):
        read_jsonl(broken)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"sql_prompt": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(GemsqlError, match=r"row 1.*UTF-8"):
        read_jsonl(latin)
    with pytest.raises(GemsqlError, match="unsupported file type"):
        (tmp_path / "d.xlsx").write_text("x")
        load_rows(DataConfig(dataset=str(tmp_path / "d.xlsx")), seed=0)


def test_unknown_hub_dataset_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GemsqlError, match="Offline, use dataset: builtin"):
        load_rows(DataConfig(dataset="nobody/no-such-dataset"), seed=0)


def test_prepare_splits_counts_and_drops_long_rows(tmp_path, embedded_model):
    from conftest import tiny_config

    from gemsql.data import prepare
    from gemsql.model import load_tokenizer

    long_rows = [
        {"sql_prompt": f"Question {i}?", "sql_context": "CREATE TABLE t (a INT);" + (" -- pad" * (400 if i % 5 == 0 else 0)),
         "sql": "SELECT a FROM t;"}
        for i in range(50)
    ]
    path = _write(tmp_path / "rows.jsonl", long_rows)
    cfg = tiny_config(tmp_path / "run", embedded_model, dataset=str(path), num_rows=0, test_size=10, max_length=256)
    prepared = prepare(cfg, tokenizer=load_tokenizer(cfg.model))
    train, test = read_jsonl(prepared.train), read_jsonl(prepared.test)
    assert prepared.stats["rows_dropped_too_long"] == 10
    assert len(test) == 10 and len(train) == 30
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert prepared.stats["train"]["max"] <= 256
    assert train[0]["messages"][1] == {"role": "assistant", "content": "SELECT a FROM t;"}
    # too few rows for the split: a clear error and no half-written data folder
    cfg = tiny_config(tmp_path / "run2", embedded_model, dataset=str(path), num_rows=0, test_size=45, max_length=256)
    with pytest.raises(GemsqlError, match="not enough for test_size"):
        prepare(cfg, tokenizer=load_tokenizer(cfg.model))
    assert not (tmp_path / "run2" / "data").exists()
