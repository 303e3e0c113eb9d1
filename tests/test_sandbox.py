"""The sandbox against a hostile-SQL corpus, and execution-based scoring."""

import os

import pytest

from gemsql.evaluate.hostile import audit, corpus
from gemsql.evaluate.sandbox import Limits, memory_db, open_readonly, run
from gemsql.evaluate.score import normalize_sql, score


def test_hostile_corpus_changes_no_file_and_ends_in_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = corpus(str(tmp_path / "victim"))
    assert len(cases) >= 200
    assert {c for c, _ in cases} >= {"recursive_cte", "cross_join", "attach", "write", "flood", "multi_statement",
                                    "comment", "unicode", "pragma", "extension", "vacuum_backup"}
    result = audit(tmp_path / "work", Limits(timeout_s=0.5), slack_s=0.5)
    assert result.summary() == {"hostile_cases": len(cases), "files_changed": 0, "over_limit": 0, "crashes": 0}, result.details
    assert sorted(os.listdir(tmp_path / "work" / "victim")) == ["user.sqlite"]


def test_user_database_is_read_only(tmp_path):
    import sqlite3

    path = tmp_path / "u.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2);")
    con.close()
    before = path.read_bytes()
    db = open_readonly(path)
    assert run(db, "SELECT sum(a) FROM t").rows == [(3,)]
    for sql in ("DELETE FROM t", "INSERT INTO t VALUES (3)", "DROP TABLE t", "PRAGMA journal_mode=WAL",
                f"ATTACH '{tmp_path}/x.db' AS x", "CREATE TABLE u (b)"):
        assert run(db, sql).error, sql
    db.close()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["u.sqlite"]


def test_limits_cut_long_and_large_queries():
    db = memory_db("CREATE TABLE t (a INT); INSERT INTO t VALUES (1);")
    r = run(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c", Limits(max_rows=100))
    assert r.ok and r.truncated and len(r.rows) == 100
    r = run(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c", Limits(timeout_s=0.2))
    assert r.error == "time limit exceeded" and r.seconds < 1.0
    assert "too big" in run(db, "SELECT randomblob(2000000000)").error
    assert run(db, "SELECT 1; DELETE FROM t").error
    assert run(db, "SELECT count(*) FROM t").rows == [(1,)]


CTX = "CREATE TABLE t (id INT, name TEXT, v REAL); INSERT INTO t VALUES (1,'a',1.5),(2,'b',2.25),(3,'c',3.0);"


@pytest.mark.parametrize(
    "gold, prediction, exec_match, exact",
    [
        ("SELECT name FROM t WHERE v > 2", "select NAME from t where v>2;", True, True),
        ("SELECT name FROM t WHERE v > 2", "SELECT name FROM t WHERE id >= 2 ORDER BY id DESC", True, False),
        ("SELECT name FROM t ORDER BY v DESC", "SELECT name FROM t ORDER BY v", False, False),  # order matters
        ("SELECT name FROM t WHERE v > 2", "SELECT name FROM t WHERE v > 2 UNION ALL SELECT 'b'", False, False),
        ("SELECT AVG(v) FROM t", "SELECT SUM(v) / 3.0 FROM t", True, False),  # floats with tolerance
        ("SELECT COUNT(*) FROM t", "SELECT COUNT(*) FROM t WHERE 1", True, False),
        ("DELETE FROM t WHERE v < 2", "DELETE FROM t WHERE id = 1", True, False),  # same resulting state
        ("DELETE FROM t WHERE v < 2", "DELETE FROM t WHERE id = 2", False, False),
        ("UPDATE t SET v = v * 2 WHERE id = 1", "UPDATE t SET v = 3.0 WHERE name = 'a'", True, False),
        ("DELETE FROM t WHERE v < 2", "SELECT 1", False, False),
        ("SELECT 1", "this is not sql", False, False),
        # the columns in another order, as Spider's test-suite evaluation accepts; rows must still pair up
        ("SELECT id, name FROM t", "SELECT name, id FROM t", True, False),
        ("SELECT id, name FROM t ORDER BY v", "SELECT name, id FROM t ORDER BY v DESC", False, False),
        ("SELECT id, name FROM t", "SELECT name, id FROM t ORDER BY id DESC", True, False),
        ("SELECT id, v FROM t", "SELECT v, id FROM t", True, False),
        ("SELECT id, id + 1 FROM t", "SELECT id + 1, id FROM t", True, False),  # overlapping values, still paired
        ("SELECT id, name FROM t", "SELECT name, name FROM t", False, False),
        ("SELECT id, name, v FROM t", "SELECT name, id FROM t", False, False),  # a column short
        ("SELECT id, 4 - id FROM t", "SELECT id, id FROM t", False, False),  # each column matches, the pairs do not
    ],
)
def test_score(gold, prediction, exec_match, exact):
    v = score(CTX, gold, prediction)
    assert (v.exec_match, v.exact_match) == (exec_match, exact), v


def test_score_reports_broken_examples_instead_of_raising():
    assert score(CTX, "SELECT nope FROM t", "SELECT 1").gold_error.startswith("gold fails")
    assert score("CREATE TABL broken", "SELECT 1", "SELECT 1").gold_error.startswith("context fails")
    assert not score(CTX, "SELECT 1", "SELECT 1; DROP TABLE t").valid
    # a degenerate answer nested too deeply for sqlglot (seen on the GPU: the run ended in RecursionError)
    deep = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    assert not score(CTX, "SELECT 1", deep).valid and normalize_sql(deep).startswith("select (((")
    # gold alternatives: any one counts
    assert score(CTX, ["SELECT 99", "SELECT COUNT(*) FROM t"], "SELECT 3").exec_match


def test_normalize_sql():
    assert normalize_sql("select  a from T where x='y';") == normalize_sql("SELECT a FROM T WHERE x = 'y'")
    assert normalize_sql("not ( sql") == "not ( sql"


def test_eval_scores_the_greedy_answers_that_execution_guided_decoding_replaced(tmp_path):
    import json

    from gemsql.errors import GemsqlError
    from gemsql.evaluate.report import evaluate

    gold = "SELECT COUNT(*) FROM t"
    rows = [  # a beam replaced the first answer (its greedy SQL names a column that is not there); not the second
        {"context": CTX, "sql": gold, "prediction": gold, "candidate": 2, "greedy_prediction": "SELECT nope FROM t"},
        {"context": CTX, "sql": gold, "prediction": "SELECT 1", "candidate": 0},
    ]
    preds = tmp_path / "predictions.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = evaluate(preds, tmp_path / "eval")
    assert (m["exec_match"], m["valid"], m["replaced"]) == (0.5, 1.0, 1)
    assert (m["greedy"]["exec_match"], m["greedy"]["valid"], m["greedy"]["examples"]) == (0.0, 0.5, 2)
    assert "greedy (before the beam retry replaced 1)" in (tmp_path / "eval" / "report.md").read_text()
    verdicts = [json.loads(x) for x in (tmp_path / "eval" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["candidate"] for v in verdicts] == [2, 0] and m["repaired"] == 0
    # schema repair replaced an answer too: counted apart, and the report names both
    preds.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {**rows[0], "candidate": 0, "repaired": True}]))
    m = evaluate(preds, tmp_path / "eval")
    assert (m["replaced"], m["repaired"], m["greedy"]["exec_match"]) == (2, 1, 0.0)
    assert "greedy (before the beam retry and schema repair replaced 2)" in (tmp_path / "eval" / "report.md").read_text()
    verdicts = [json.loads(x) for x in (tmp_path / "eval" / "verdicts.jsonl").read_text().splitlines()]
    assert [v.get("repaired", False) for v in verdicts] == [False, False, True]
    # without the retry's field there is nothing else to score
    preds.write_text(json.dumps(rows[1]) + "\n")
    assert "greedy" not in evaluate(preds, tmp_path / "eval")
    preds.write_text(json.dumps({**rows[0], "greedy_prediction": 7}) + "\n")
    with pytest.raises(GemsqlError, match="greedy_prediction") as e:
        evaluate(preds, tmp_path / "eval")
    assert "row 1" in str(e.value) and str(preds) in str(e.value)


def test_eval_says_why_answers_fail(tmp_path):
    import json

    from gemsql.evaluate.report import evaluate

    gold = "SELECT name FROM t WHERE v > 2"
    answers = [gold, "SELECT name FROM t", "SELECT nope FROM t", "SELECT name FROM nope", "SELECT name FROM t WHERE",
               "SELECT name FROM t", "SELECT COUNT(*) FROM t UNION SELECT id, name FROM t"]
    rows = [{"context": CTX, "sql": gold, "prediction": a} for a in answers]
    rows[5]["sql"] = "SELECT missing FROM t"  # a broken gold is the example's failure, not the model's
    preds = tmp_path / "predictions.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = evaluate(preds, tmp_path / "eval")
    assert m["failures"] == {"wrong result": 1, "no such column": 1, "no such table": 1, "syntax error": 1,
                             "other error": 1, "gold fails": 1}
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "### Why answers fail" in report and "| no such column | 1 |" in report
    assert "<h2>Why answers fail</h2>" in (tmp_path / "eval" / "report.html").read_text()
