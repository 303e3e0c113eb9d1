import csv
import dataclasses
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
    elif path.suffix == ".gz":
        import gzip

        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
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


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv", ".parquet"])
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
    long_ids = {f"row-{i + 1}" for i in range(50) if i % 5 == 0}
    test_ids, train_ids = {r["id"] for r in test}, {r["id"] for r in train}
    assert len(test) == 10
    # long rows never reach training, and each one left out is counted...
    assert not train_ids & long_ids
    assert prepared.stats["train_rows_dropped_too_long"] == len(long_ids - test_ids)
    assert len(train) == 40 - len(long_ids - test_ids)
    # ...while test rows are kept whole, long or not (this seed puts long rows in the test split)
    assert test_ids & long_ids
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert prepared.stats["train"]["max"] <= 256
    assert train[0]["messages"][1] == {"role": "assistant", "content": "SELECT a FROM t;"}
    # too few rows for the split: a clear error and no half-written data folder
    cfg = tiny_config(tmp_path / "run2", embedded_model, dataset=str(path), num_rows=0, test_size=50, max_length=256)
    with pytest.raises(GemsqlError, match="not enough for test_size"):
        prepare(cfg, tokenizer=load_tokenizer(cfg.model))
    assert not (tmp_path / "run2" / "data").exists()


def _spider_like(n_dbs: int = 8, per_db: int = 6) -> list[dict]:
    """Rows of several databases whose contexts carry many INSERT rows, and twin paraphrases."""
    rows = []
    for d in range(n_dbs):
        inserts = ", ".join(f"({i}, 'name {d}-{i}')" for i in range(40))
        context = f"CREATE TABLE db{d}_people (id INT PRIMARY KEY, name TEXT);\nINSERT INTO db{d}_people VALUES {inserts};"
        for q in range(per_db):
            rows.append({"question": f"How many people with id above {q} in {d}?", "context": context,
                         "sql": f"SELECT count(*) FROM db{d}_people WHERE id > {q}", "domain": f"db{d}"})
    return rows


def test_split_by_holds_out_whole_groups_and_prompts_show_a_few_rows(tmp_path, embedded_model):
    from conftest import tiny_config

    from gemsql.data import prepare
    from gemsql.evaluate.score import score
    from gemsql.model import load_tokenizer

    path = _write(tmp_path / "spider.jsonl", _spider_like())
    cfg = tiny_config(tmp_path / "run", embedded_model, dataset=str(path), num_rows=0, test_size=10,
                      question_column="question", context_column="context", sql_column="sql",
                      split_by="domain", schema_sample_rows=2, max_length=1024)
    prepared = prepare(cfg, tokenizer=load_tokenizer(cfg.model))
    train, test = read_jsonl(prepared.train), read_jsonl(prepared.test)
    test_dbs = {r["metadata"]["domain"] for r in test}
    assert len(test) == 12 and len(test_dbs) == 2  # whole groups, until at least test_size rows
    assert not test_dbs & {r["metadata"]["domain"] for r in train}
    assert sorted(test_dbs) == prepared.stats["test_groups"]
    for r in test + train:
        shown = r["messages"][0]["content"]
        assert r["prompt_context"] in shown and "(1, 'name" in shown and "(2, 'name" not in shown
        assert "(39, 'name" in r["context"]  # the full context is kept for execution
    # scoring on the full context: the gold counts 40 rows, not the 2 the prompt showed
    assert score(test[0]["context"], test[0]["sql"], test[0]["sql"]).exec_match

    capped = tiny_config(tmp_path / "capped", embedded_model, dataset=str(path), num_rows=0, test_size=10,
                         question_column="question", context_column="context", sql_column="sql",
                         split_by="domain", max_train_rows=7, max_length=1024)
    again = prepare(capped, tokenizer=load_tokenizer(cfg.model))
    assert len(read_jsonl(again.train)) == 7
    assert [r["id"] for r in read_jsonl(again.test)] == [r["id"] for r in test]  # same held-out rows


def test_schema_shuffle_reorders_the_tables_of_training_prompts_only(tmp_path, embedded_model):
    from conftest import tiny_config

    from gemsql.data import prepare
    from gemsql.model import load_tokenizer

    rows = _spider_like()
    for r in rows:  # three tables a database, each with its rows; the first keeps the questions' answers
        d = r["domain"]
        r["context"] += "".join(f"\nCREATE TABLE {d}_{t} (k INT);\nINSERT INTO {d}_{t} VALUES (7);" for t in ("pets", "cars"))
    path = _write(tmp_path / "three.jsonl", rows)
    common = dict(dataset=str(path), num_rows=0, test_size=10, question_column="question", context_column="context",
                  sql_column="sql", split_by="domain", schema_sample_rows=1, max_length=1024)
    runs = {}
    for shuffle in (False, True):
        cfg = tiny_config(tmp_path / f"run-{shuffle}", embedded_model, schema_shuffle=shuffle, **common)
        prepared = prepare(cfg, tokenizer=load_tokenizer(cfg.model))
        runs[shuffle] = read_jsonl(prepared.train), read_jsonl(prepared.test), prepared.stats
    (train, test, stats), (train_s, test_s, stats_s) = runs[False], runs[True]
    assert test_s == test and stats_s == stats  # test prompts keep the database's order; no row or token changes
    assert [r["id"] for r in train_s] == [r["id"] for r in train]

    def blocks(context: str) -> list[str]:  # a table's CREATE with its sample INSERT
        return ["CREATE" + b for b in context.split("CREATE")[1:]]

    orders = set()
    for plain, shuffled in zip(train, train_s):
        a, b = blocks(plain["prompt_context"]), blocks(shuffled["prompt_context"])
        assert len(a) == 3 and sorted(x.strip() for x in a) == sorted(x.strip() for x in b)  # whole blocks, moved
        assert shuffled["prompt_context"] in shuffled["messages"][0]["content"]
        assert shuffled["context"] == plain["context"]  # execution still runs the context as given
        orders.add(tuple(x.split()[2].split("_")[-1] for x in b))
    assert len({o[0] for o in orders}) == 3  # every table comes first in some prompt

    with pytest.raises(GemsqlError, match="needs schema_sample_rows >= 0") as e:
        tiny_config(tmp_path / "x", embedded_model, **{**common, "schema_sample_rows": -1}, schema_shuffle=True)
    assert "field 'schema_shuffle'" in str(e.value)


def test_split_by_that_takes_every_group_and_a_broken_context_are_named(tmp_path, embedded_model):
    from conftest import tiny_config

    from gemsql.data import prepare
    from gemsql.model import load_tokenizer

    rows = _spider_like(n_dbs=2, per_db=3)
    path = _write(tmp_path / "two.jsonl", rows)
    common = dict(dataset=str(path), num_rows=0, question_column="question", context_column="context",
                  sql_column="sql", split_by="domain", max_length=1024)
    with pytest.raises(GemsqlError, match="takes every 'domain' group"):
        prepare(tiny_config(tmp_path / "a", embedded_model, test_size=5, **common), tokenizer=load_tokenizer(
            tiny_config(tmp_path / "a", embedded_model).model))
    rows[4]["context"] = "CREATE TABLE broken (;"
    path = _write(tmp_path / "broken.jsonl", rows)
    with pytest.raises(GemsqlError) as e:
        prepare(tiny_config(tmp_path / "b", embedded_model, test_size=2, schema_sample_rows=1,
                            **{**common, "dataset": str(path)}),
                tokenizer=load_tokenizer(tiny_config(tmp_path / "b", embedded_model).model))
    assert "row 5" in str(e.value) and "field 'context'" in str(e.value) and str(path) in str(e.value)
    assert not (tmp_path / "b" / "data").exists()


def test_a_prepared_split_can_be_read_back_as_input(tmp_path, embedded_model):
    """`gemsql generate --input RUN/data/test.jsonl` works with the config that prepared it."""
    from conftest import tiny_config

    from gemsql.data import prepare
    from gemsql.model import load_tokenizer

    cfg = tiny_config(tmp_path / "run", embedded_model, num_rows=30, test_size=5)
    prepared = prepare(cfg, tokenizer=load_tokenizer(cfg.model))
    rows = load_rows(dataclasses.replace(cfg.data, dataset=str(prepared.test)), seed=0)
    original = read_jsonl(prepared.test)
    assert [(r.id, r.question, r.context, r.sql) for r in rows] == [
        (o["id"], o["question"], o["context"], o["sql"]) for o in original]
    assert rows[0].metadata == original[0]["metadata"]  # nested metadata read back too
