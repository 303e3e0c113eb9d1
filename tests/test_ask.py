import sqlite3

import pytest

from conftest import CharTokenizer

from gemsql.ask import check_read_only, fit_schema, read_schema
from gemsql.cli import main


@pytest.fixture
def shop(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "CREATE VIEW cheap AS SELECT * FROM products WHERE price < 5;"
        + "".join(f"INSERT INTO products VALUES ({i}, 'item ''{i}''', {i * 1.5});" for i in range(1, 21))
    )
    con.close()
    return path


def test_schema_is_read_with_a_few_sample_rows(shop):
    con = sqlite3.connect(shop)
    schema = read_schema(con, sample_rows=3)
    assert "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);" in schema
    assert "CREATE VIEW cheap" in schema
    assert "INSERT INTO \"products\" VALUES (1, 'item ''1''', 1.5), (2, 'item ''2''', 3.0), (3, 'item ''3''', 4.5);" in schema
    # the sample rows are valid SQL: the schema rebuilds a database
    sqlite3.connect(":memory:").executescript(schema)


def test_schema_shrinks_to_fit_the_prompt(shop):
    con = sqlite3.connect(shop)
    full, rows = fit_schema(con, CharTokenizer(), 10_000)
    assert rows == 3
    small, rows = fit_schema(con, CharTokenizer(), len(read_schema(con, 0)))
    assert rows == 0 and "INSERT" not in small


@pytest.mark.parametrize(
    "sql, ok",
    [
        ("SELECT name FROM products WHERE price > 2", True),
        ("WITH c AS (SELECT 1) SELECT * FROM c", True),
        ("DELETE FROM products", False),
        ("UPDATE products SET price = 0", False),
        ("DROP TABLE products", False),
        ("SELECT 1; DROP TABLE products", False),
        ("ATTACH 'x.db' AS x", False),
        ("PRAGMA writable_schema = 1", False),
        ("this is not sql at all", False),
        ("SELECT " + "(" * 5000 + "1" + ")" * 5000, False),  # too deep for sqlglot's parser: refused, no crash
    ],
)
def test_only_one_read_only_statement_runs(sql, ok):
    assert (check_read_only(sql) is None) == ok


def test_ask_errors_are_clear(tmp_path, tiny_model, capsys):
    assert main(["ask", "--model", str(tiny_model), "--db", str(tmp_path / "missing.sqlite"), "How many?"]) == 2
    assert "missing.sqlite" in capsys.readouterr().err
    assert main(["ask", "--model", str(tiny_model), "--db", str(tmp_path / "x.sqlite")]) == 2
    assert "question" in capsys.readouterr().err
