"""Schema repair (gemsql.repair) and its place after execution-guided decoding (gemsql.generate.repaired)."""

import sqlite3

from gemsql.evaluate.sandbox import memory_db
from gemsql.generate import Generation, context_runner, context_schemas, repaired
from gemsql.repair import Schema, database_schema, repairs

SHOP = """
CREATE TABLE people (id INT PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE pets (pet_id INT PRIMARY KEY, owner_id INT REFERENCES people(id), kind TEXT,
                   FOREIGN KEY (pet_id) REFERENCES tags);
CREATE TABLE tags (pet_id INT, tag TEXT);
CREATE TABLE toys (toy TEXT, owner INT, FOREIGN KEY (owner) REFERENCES people (id));
INSERT INTO people VALUES (1, 'Ann', 'Oslo'), (2, 'Bo', 'Rome');
INSERT INTO pets VALUES (10, 1, 'cat'), (11, 2, 'dog'), (12, 1, 'owl');
INSERT INTO tags VALUES (10, 'red'), (11, 'blue');
INSERT INTO toys VALUES ('ball', 2);
"""


def _rows(sql: str) -> list:
    con = sqlite3.connect(":memory:")
    con.executescript(SHOP)
    return sorted(con.execute(sql).fetchall())


def _schema():
    con = memory_db(SHOP)  # the sandbox: its authorizer denies PRAGMA, so the schema is read through SELECTs
    try:
        return database_schema(con)
    finally:
        con.close()


def test_the_schema_is_read_through_selects_with_every_kind_of_foreign_key():
    schema = _schema()
    assert schema.columns == {"people": {"id", "name", "city"}, "pets": {"pet_id", "owner_id", "kind"},
                              "tags": {"pet_id", "tag"}, "toys": {"toy", "owner"}}
    # a column REFERENCES, a table FOREIGN KEY without columns (the parent's column of the same name), and one with
    assert set(schema.links) == {("pets", "owner_id", "people", "id"), ("pets", "pet_id", "tags", "pet_id"),
                                 ("toys", "owner", "people", "id")}


def test_a_column_under_the_wrong_alias_moves_to_the_table_that_has_it():
    wrong = "SELECT T2.name FROM people AS T1 JOIN pets AS T2 ON T1.id = T2.owner_id WHERE T2.kind = 'owl'"
    (fix,) = repairs(wrong, _schema())
    assert _rows(fix) == [("Ann",)]


def test_a_column_of_another_table_gets_its_join_along_a_foreign_key_either_way():
    schema = _schema()
    # pets.owner_id -> people.id: the query names a pet, the column lives in people (child to parent)
    (fix,) = repairs("SELECT kind FROM pets WHERE city = 'Oslo'", schema)
    assert _rows(fix) == [("cat",), ("owl",)]
    # the same key the other way (parent to child), with a name both tables have qualified to keep it unambiguous
    (fix,) = repairs("SELECT name FROM people WHERE toy = 'ball'", schema)
    assert _rows(fix) == [("Bo",)]
    # an aliased query keeps its aliases; the joined table gets a fresh one
    (fix,) = repairs("SELECT T1.kind FROM pets AS T1 WHERE T1.tag = 'blue'", schema)
    assert _rows(fix) == [("dog",)] and " AS T1" in fix


def test_a_misspelled_table_is_renamed_to_the_one_spelled_almost_the_same():
    schema = _schema()
    # in a subquery too, and a column qualified with the misspelled name still resolves (it becomes the alias)
    (fix,) = repairs("SELECT kind FROM pets WHERE owner_id IN (SELECT id FROM peoples WHERE peoples.city = 'Oslo')",
                     schema)
    assert _rows(fix) == [("cat",), ("owl",)]
    # then the column rules apply to the renamed query: `tag` lives in tags, one foreign key away from pets
    renamed, joined = repairs("SELECT T1.kind FROM petss AS T1 WHERE T1.tag = 'red'", schema)
    assert "FROM pets AS T1" in renamed and "FROM pets AS T1" in joined and _rows(joined) == [("cat",)]
    # not alike enough, or alike two tables equally: nothing to rename; a CTE's name is not a table
    assert repairs("SELECT name FROM persons", schema) == []
    assert repairs("SELECT * FROM tag", Schema({"tags": frozenset({"a"}), "taga": frozenset({"a"})}, ())) == []
    assert repairs("WITH pet AS (SELECT kind FROM pets) SELECT kind FROM pet", schema) == []


def test_nothing_is_proposed_where_nothing_applies():
    schema = _schema()
    for sql in ("SELECT name FROM people WHERE city = 'Oslo'",  # every column is where it is asked for
                "SELECT name FROM people WHERE colour = 'red'",  # a column no table has
                "SELECT name FROM people WHERE id IN (SELECT owner_id FROM pets WHERE tag = 'red')",  # a subquery
                "SELECT name FROM people UNION SELECT kind FROM pets WHERE city = 'x'",  # a set operation
                "SELEC name FROM",  # no SQL
                "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM petss",  # nested too deeply to parse
                "DELETE FROM people WHERE city = 'Oslo'"):  # not a query
        assert repairs(sql, schema) == [], sql


def test_repair_replaces_only_answers_that_fail_and_only_with_one_that_runs():
    contexts = [SHOP, SHOP, SHOP, "CREATE TABLE broken ("]
    answers = ["SELECT name FROM people",  # runs: untouched
               "SELECT kind FROM pets WHERE city = 'Rome'",  # fails, repairable
               "SELECT name FROM people WHERE colour = 'red'",  # fails, nothing to repair with
               "SELECT x FROM broken"]  # its context does not build: no schema, no repair
    gens = [Generation(sql=s, raw=s, new_tokens=1, stop_reason="<end_of_turn>") for s in answers]
    gens[1] = Generation(sql=answers[1], raw="", new_tokens=1, stop_reason="x", candidate=3, greedy_sql="SELECT 1 FROM")
    out = repaired(gens, context_runner(contexts), context_schemas(contexts))
    assert [g.repaired for g in out] == [False, True, False, False]
    assert out[0] == gens[0] and out[2] == gens[2] and out[3] == gens[3]
    assert _rows(out[1].sql) == [("dog",)]
    assert out[1].greedy_sql == "SELECT 1 FROM"  # the greedy answer a beam replaced before stays on record
    # with rows asked for, a repair that runs but returns no rows is not kept
    gens[1] = Generation(sql="SELECT kind FROM pets WHERE city = 'Paris'", raw="", new_tokens=1, stop_reason="x")
    out = repaired(gens, context_runner(contexts, rows_needed=True), context_schemas(contexts))
    assert not out[1].repaired


def test_a_misspelled_column_is_renamed_to_the_one_of_the_querys_tables_spelled_almost_the_same():
    schema = _schema()
    (fix,) = repairs("SELECT name FROM people WHERE citys = 'Oslo'", schema)
    assert _rows(fix) == [("Ann",)]
    # qualified with the wrong alias as well: the rename takes the table of the column it picks
    (fix,) = repairs("SELECT T1.kinds FROM people AS T1 JOIN pets AS T2 ON T1.id = T2.owner_id WHERE T1.name = 'Bo'",
                     schema)
    assert _rows(fix) == [("dog",)] and "T2.kind" in fix
    # only the query's own tables: `tags` (one foreign key away) is the join rule's; not alike enough: nothing
    assert repairs("SELECT name FROM people WHERE cty = 'Oslo'", schema) == []
    # alike two columns equally: nothing
    two = Schema({"t": frozenset({"colour_a", "colour_b"})}, ())
    assert repairs("SELECT colour_c FROM t", two) == []
