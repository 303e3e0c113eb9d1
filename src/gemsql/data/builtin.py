"""gemsql's built-in text-to-SQL set: generated offline, deterministic by seed, every gold query executed.

Each example gets its own small database (CREATE TABLE + INSERT, gretel's `sql_context` style) drawn
from one of several domains, and a question from templates spanning filters, aggregates,
GROUP BY/HAVING, joins, ORDER BY + LIMIT, subqueries and data changes, each with several phrasings.
A gold query is kept only if it executes in SQLite on its context (and a SELECT returns rows), so
execution accuracy on this set is meaningful.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from gemsql.data.sources import Row

FIRST = ["Alice", "Bob", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi", "Lena",
         "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe"]
LAST = ["Smith", "Garcia", "Chen", "Okafor", "Novak", "Silva", "Kim", "Rossi", "Haddad", "Jensen", "Patel", "Moreau"]
CITIES = ["Berlin", "Lagos", "Lima", "Osaka", "Toronto", "Madrid", "Nairobi", "Oslo", "Denver", "Hanoi", "Quito"]


@dataclass(frozen=True)
class Col:
    name: str
    sql_type: str
    role: str  # key | name | category | measure | year | fk
    noun: str = ""
    values: tuple = ()
    low: float = 0
    high: float = 0
    decimals: int = 0


@dataclass(frozen=True)
class Table:
    name: str
    entity: str  # singular noun
    entities: str  # plural noun
    cols: tuple[Col, ...]

    def col(self, role: str) -> Col:
        return next(c for c in self.cols if c.role == role)

    def cols_of(self, role: str) -> list[Col]:
        return [c for c in self.cols if c.role == role]


@dataclass(frozen=True)
class Domain:
    name: str
    main: Table
    child: Table  # has an fk column to main.id


def _person(noun="name") -> Col:
    return Col("name", "VARCHAR(50)", "name", noun, values=tuple(f"{f} {l}" for f in FIRST for l in LAST))


DOMAINS = [
    Domain(
        "human resources",
        Table("employees", "employee", "employees", (
            Col("id", "INT", "key"), _person(),
            Col("department", "VARCHAR(30)", "category", "department", ("Sales", "Engineering", "Finance", "Support", "Legal")),
            Col("salary", "DECIMAL(10,2)", "measure", "salary", low=38000, high=140000, decimals=2),
            Col("hire_year", "INT", "year", "hire year", low=2008, high=2024),
        )),
        Table("trainings", "training session", "training sessions", (
            Col("id", "INT", "key"), Col("employee_id", "INT", "fk"),
            Col("topic", "VARCHAR(30)", "category", "topic", ("Safety", "Leadership", "Python", "Compliance")),
            Col("hours", "INT", "measure", "hours", low=2, high=40),
        )),
    ),
    Domain(
        "retail",
        Table("products", "product", "products", (
            Col("id", "INT", "key"),
            Col("name", "VARCHAR(50)", "name", "name", ("Desk Lamp", "Wool Scarf", "Trail Shoes", "Coffee Grinder",
                "Yoga Mat", "Rain Jacket", "Notebook", "Water Bottle", "Backpack", "Headphones", "Teapot", "Monitor")),
            Col("category", "VARCHAR(30)", "category", "category", ("Home", "Clothing", "Sports", "Electronics")),
            Col("price", "DECIMAL(8,2)", "measure", "price", low=4, high=400, decimals=2),
            Col("launch_year", "INT", "year", "launch year", low=2015, high=2024),
        )),
        Table("orders", "order", "orders", (
            Col("id", "INT", "key"), Col("product_id", "INT", "fk"),
            Col("channel", "VARCHAR(20)", "category", "sales channel", ("online", "store", "wholesale")),
            Col("quantity", "INT", "measure", "quantity", low=1, high=60),
        )),
    ),
    Domain(
        "education",
        Table("students", "student", "students", (
            Col("id", "INT", "key"), _person(),
            Col("major", "VARCHAR(30)", "category", "major", ("Biology", "History", "Physics", "Economics", "Art")),
            Col("gpa", "DECIMAL(3,2)", "measure", "GPA", low=2.0, high=4.0, decimals=2),
            Col("enrollment_year", "INT", "year", "enrollment year", low=2016, high=2024),
        )),
        Table("exams", "exam", "exams", (
            Col("id", "INT", "key"), Col("student_id", "INT", "fk"),
            Col("subject", "VARCHAR(30)", "category", "subject", ("Math", "Writing", "Chemistry", "Statistics")),
            Col("score", "INT", "measure", "score", low=40, high=100),
        )),
    ),
    Domain(
        "energy",
        Table("power_plants", "power plant", "power plants", (
            Col("id", "INT", "key"),
            Col("name", "VARCHAR(50)", "name", "name", ("Sunridge", "Northwind", "Blue River", "Eastfield", "Red Mesa",
                "Clearwater", "High Plains", "Stonebrook", "Silver Lake", "Pine Valley", "Coastline", "Ironhill")),
            Col("source", "VARCHAR(20)", "category", "energy source", ("solar", "wind", "hydro", "gas", "nuclear")),
            Col("capacity_mw", "DECIMAL(8,1)", "measure", "capacity in MW", low=20, high=1800, decimals=1),
            Col("commissioned_year", "INT", "year", "commissioning year", low=1975, high=2024),
        )),
        Table("outages", "outage", "outages", (
            Col("id", "INT", "key"), Col("plant_id", "INT", "fk"),
            Col("cause", "VARCHAR(30)", "category", "cause", ("maintenance", "storm", "grid fault", "fuel supply")),
            Col("duration_hours", "INT", "measure", "duration in hours", low=1, high=96),
        )),
    ),
    Domain(
        "healthcare",
        Table("patients", "patient", "patients", (
            Col("id", "INT", "key"), _person(),
            Col("city", "VARCHAR(30)", "category", "city", tuple(CITIES[:6])),
            Col("age", "INT", "measure", "age", low=1, high=95),
            Col("registered_year", "INT", "year", "registration year", low=2010, high=2024),
        )),
        Table("visits", "visit", "visits", (
            Col("id", "INT", "key"), Col("patient_id", "INT", "fk"),
            Col("clinic", "VARCHAR(30)", "category", "clinic", ("Cardiology", "Dermatology", "Pediatrics", "Oncology")),
            Col("cost", "DECIMAL(8,2)", "measure", "cost", low=40, high=2500, decimals=2),
        )),
    ),
    Domain(
        "sports",
        Table("players", "player", "players", (
            Col("id", "INT", "key"), _person(),
            Col("position", "VARCHAR(20)", "category", "position", ("Goalkeeper", "Defender", "Midfielder", "Forward")),
            Col("goals", "INT", "measure", "goals", low=0, high=45),
            Col("debut_year", "INT", "year", "debut year", low=2005, high=2024),
        )),
        Table("matches", "match", "matches", (
            Col("id", "INT", "key"), Col("player_id", "INT", "fk"),
            Col("competition", "VARCHAR(30)", "category", "competition", ("League", "Cup", "Friendly")),
            Col("minutes", "INT", "measure", "minutes played", low=5, high=120),
        )),
    ),
    Domain(
        "logistics",
        Table("warehouses", "warehouse", "warehouses", (
            Col("id", "INT", "key"),
            Col("name", "VARCHAR(50)", "name", "name", tuple(f"{c} Hub" for c in CITIES)),
            Col("region", "VARCHAR(20)", "category", "region", ("North", "South", "East", "West")),
            Col("capacity_tons", "INT", "measure", "capacity in tons", low=500, high=20000),
            Col("opened_year", "INT", "year", "opening year", low=1990, high=2024),
        )),
        Table("shipments", "shipment", "shipments", (
            Col("id", "INT", "key"), Col("warehouse_id", "INT", "fk"),
            Col("carrier", "VARCHAR(30)", "category", "carrier", ("RoadFast", "SeaLine", "AirBridge")),
            Col("weight_kg", "DECIMAL(8,1)", "measure", "weight in kg", low=5, high=9000, decimals=1),
        )),
    ),
]


# ---------------------------------------------------------------- databases


def _value(rng: random.Random, col: Col):
    if col.values:
        return rng.choice(col.values)
    if col.decimals:
        return round(rng.uniform(col.low, col.high), col.decimals)
    return rng.randint(int(col.low), int(col.high))


def _literal(v) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v) if isinstance(v, float) else str(v)


def _make_rows(rng: random.Random, table: Table, n: int, parent_ids: list[int] | None) -> list[tuple]:
    rows, used_names = [], set()
    for i in range(1, n + 1):
        row = []
        for c in table.cols:
            if c.role == "key":
                row.append(i)
            elif c.role == "fk":
                row.append(rng.choice(parent_ids))
            elif c.role == "name":
                v = _value(rng, c)
                while v in used_names:  # names identify rows in questions, so keep them unique
                    v = _value(rng, c)
                used_names.add(v)
                row.append(v)
            else:
                row.append(_value(rng, c))
        rows.append(tuple(row))
    return rows


def _ddl(table: Table, rows: list[tuple]) -> str:
    cols = ", ".join(f"{c.name} {c.sql_type}" for c in table.cols)
    names = ", ".join(c.name for c in table.cols)
    values = ", ".join("(" + ", ".join(_literal(v) for v in r) + ")" for r in rows)
    return f"CREATE TABLE {table.name} ({cols}); INSERT INTO {table.name} ({names}) VALUES {values};"


# ---------------------------------------------------------------- question templates


@dataclass
class Ctx:
    """What a template sees: the domain, its rows, and a random source."""

    d: Domain
    rng: random.Random
    main_rows: list[tuple]
    child_rows: list[tuple]

    def pick(self, table: Table, role: str, rows: list[tuple] | None = None):
        rows = self.main_rows if rows is None else rows
        col = table.col(role)
        idx = table.cols.index(col)
        return col, self.rng.choice(rows)[idx]

    def one_of(self, *phrasings: str) -> str:
        return self.rng.choice(phrasings)


Template = Callable[[Ctx], tuple[str, str, str, str, bool]]  # question, sql, complexity, task, needs_child


def t_filter_category(c: Ctx):
    m = c.d.main
    cat, v = c.pick(m, "category")
    q = c.one_of(f"List the names of {m.entities} whose {cat.noun} is {v}.",
                 f"Which {m.entities} are in the {v} {cat.noun}?",
                 f"Show every {m.entity} with {cat.noun} '{v}'.",
                 f"Give me the {m.entities} where the {cat.noun} equals {v}.")
    return q, f"SELECT name FROM {m.name} WHERE {cat.name} = {_literal(v)};", "basic SQL", "data retrieval", False


def t_filter_measure(c: Ctx):
    m = c.d.main
    col, v = c.pick(m, "measure")
    op, word = c.rng.choice([(">", "greater than"), ("<", "less than"), (">=", "at least"), ("<=", "at most")])
    q = c.one_of(f"Which {m.entities} have a {col.noun} {word} {v}?",
                 f"Find the {m.entities} with {col.noun} {word} {v}.",
                 f"Names of {m.entities} whose {col.noun} is {word} {v}?")
    return q, f"SELECT name FROM {m.name} WHERE {col.name} {op} {_literal(v)};", "basic SQL", "data retrieval", False


def t_between_years(c: Ctx):
    m = c.d.main
    col = m.col("year")
    a, b = sorted(c.rng.sample(range(int(col.low), int(col.high) + 1), 2))
    q = c.one_of(f"List the {m.entities} with a {col.noun} between {a} and {b}.",
                 f"Which {m.entities} have their {col.noun} from {a} to {b} inclusive?")
    sql = f"SELECT name, {col.name} FROM {m.name} WHERE {col.name} BETWEEN {a} AND {b};"
    return q, sql, "basic SQL", "data retrieval", False


def t_lookup(c: Ctx):
    m = c.d.main
    name_col, name = c.pick(m, "name")
    col = m.col("measure")
    q = c.one_of(f"What is the {col.noun} of {name}?", f"Show the {col.noun} for the {m.entity} named {name}.",
                 f"Look up {name}'s {col.noun}.")
    return q, f"SELECT {col.name} FROM {m.name} WHERE name = {_literal(name)};", "basic SQL", "data retrieval", False


def t_two_conditions(c: Ctx):
    m = c.d.main
    cat, v = c.pick(m, "category")
    year = m.col("year")
    _, y = c.pick(m, "year")
    q = c.one_of(f"Which {m.entities} in {cat.noun} {v} have a {year.noun} after {y}?",
                 f"List {v} {m.entities} whose {year.noun} is later than {y}.")
    sql = f"SELECT name FROM {m.name} WHERE {cat.name} = {_literal(v)} AND {year.name} > {y};"
    return q, sql, "basic SQL", "data retrieval", False


def t_count(c: Ctx):
    m = c.d.main
    cat, v = c.pick(m, "category")
    q = c.one_of(f"How many {m.entities} have {cat.noun} {v}?", f"Count the {m.entities} in the {v} {cat.noun}.",
                 f"What is the number of {v} {m.entities}?")
    return q, f"SELECT COUNT(*) FROM {m.name} WHERE {cat.name} = {_literal(v)};", "aggregation", "analytics and reporting", False


def t_agg(c: Ctx):
    m = c.d.main
    col = m.col("measure")
    fn, words = c.rng.choice([("AVG", ("average", "mean")), ("MAX", ("highest", "maximum")),
                              ("MIN", ("lowest", "minimum")), ("SUM", ("total", "combined"))])
    w = c.rng.choice(words)
    q = c.one_of(f"What is the {w} {col.noun} of all {m.entities}?", f"Find the {w} {col.noun} across {m.entities}.",
                 f"Give the {w} {col.noun} over every {m.entity}.")
    return q, f"SELECT {fn}({col.name}) FROM {m.name};", "aggregation", "analytics and reporting", False


def t_group_count(c: Ctx):
    m = c.d.main
    cat = m.col("category")
    q = c.one_of(f"How many {m.entities} are there in each {cat.noun}?", f"Count {m.entities} per {cat.noun}.",
                 f"Show the number of {m.entities} for every {cat.noun}.")
    return q, f"SELECT {cat.name}, COUNT(*) FROM {m.name} GROUP BY {cat.name};", "aggregation", "analytics and reporting", False


def t_group_avg(c: Ctx):
    m = c.d.main
    cat, col = m.col("category"), m.col("measure")
    fn, w = c.rng.choice([("AVG", "average"), ("SUM", "total"), ("MAX", "maximum")])
    q = c.one_of(f"What is the {w} {col.noun} per {cat.noun}?", f"For each {cat.noun}, show the {w} {col.noun}.",
                 f"Break down the {w} {col.noun} of {m.entities} by {cat.noun}.")
    sql = f"SELECT {cat.name}, {fn}({col.name}) FROM {m.name} GROUP BY {cat.name};"
    return q, sql, "aggregation", "analytics and reporting", False


def t_having(c: Ctx):
    m = c.d.main
    cat = m.col("category")
    counts: dict = {}
    idx = m.cols.index(cat)
    for r in c.main_rows:
        counts[r[idx]] = counts.get(r[idx], 0) + 1
    k = max(1, sorted(counts.values())[len(counts) // 2] - 1)
    q = c.one_of(f"Which {cat.noun} values have more than {k} {m.entities}?",
                 f"List each {cat.noun} with over {k} {m.entities}.")
    sql = f"SELECT {cat.name} FROM {m.name} GROUP BY {cat.name} HAVING COUNT(*) > {k};"
    return q, sql, "aggregation", "analytics and reporting", False


def t_top_n(c: Ctx):
    m = c.d.main
    col = m.col("measure")
    n = c.rng.choice([1, 2, 3])
    desc = c.rng.random() < 0.6
    w = "highest" if desc else "lowest"
    if n == 1:
        q = c.one_of(f"Which {m.entity} has the {w} {col.noun}?", f"Name the {m.entity} with the {w} {col.noun}.")
    else:
        q = c.one_of(f"List the {n} {m.entities} with the {w} {col.noun}.", f"Top {n} {m.entities} by {w} {col.noun}?")
    sql = f"SELECT name FROM {m.name} ORDER BY {col.name} {'DESC' if desc else 'ASC'} LIMIT {n};"
    return q, sql, "basic SQL", "data retrieval", False


def t_order(c: Ctx):
    m = c.d.main
    col = m.col("year")
    q = c.one_of(f"List all {m.entities} ordered by {col.noun}, most recent first.",
                 f"Show the {m.entities} sorted from the latest {col.noun} to the earliest.")
    return q, f"SELECT name, {col.name} FROM {m.name} ORDER BY {col.name} DESC;", "basic SQL", "data retrieval", False


def t_join(c: Ctx):
    m, ch = c.d.main, c.d.child
    cat = ch.col("category")
    q = c.one_of(f"List each {ch.entity}'s {cat.noun} together with the name of its {m.entity}.",
                 f"Show the {m.entity} name and {cat.noun} for every {ch.entity}.")
    fk = ch.col("fk")
    sql = f"SELECT {m.name}.name, {ch.name}.{cat.name} FROM {ch.name} JOIN {m.name} ON {ch.name}.{fk.name} = {m.name}.id;"
    return q, sql, "single join", "data retrieval", True


def t_join_filter(c: Ctx):
    m, ch = c.d.main, c.d.child
    cat, v = c.pick(ch, "category", c.child_rows)
    fk = ch.col("fk")
    q = c.one_of(f"Which {m.entities} have a {ch.entity} with {cat.noun} {v}?",
                 f"Names of {m.entities} linked to {v} {ch.entities}?")
    sql = (f"SELECT DISTINCT {m.name}.name FROM {m.name} JOIN {ch.name} ON {ch.name}.{fk.name} = {m.name}.id "
           f"WHERE {ch.name}.{cat.name} = {_literal(v)};")
    return q, sql, "single join", "data retrieval", True


def t_join_group(c: Ctx):
    m, ch = c.d.main, c.d.child
    col, fk = ch.col("measure"), ch.col("fk")
    q = c.one_of(f"What is the total {col.noun} of {ch.entities} for each {m.entity}?",
                 f"Sum the {col.noun} of the {ch.entities} per {m.entity} name.")
    sql = (f"SELECT {m.name}.name, SUM({ch.name}.{col.name}) FROM {m.name} JOIN {ch.name} "
           f"ON {ch.name}.{fk.name} = {m.name}.id GROUP BY {m.name}.name;")
    return q, sql, "single join", "analytics and reporting", True


def t_above_avg(c: Ctx):
    m = c.d.main
    col = m.col("measure")
    q = c.one_of(f"Which {m.entities} have a {col.noun} above the average?",
                 f"List {m.entities} whose {col.noun} exceeds the mean {col.noun} of all {m.entities}.")
    sql = f"SELECT name FROM {m.name} WHERE {col.name} > (SELECT AVG({col.name}) FROM {m.name});"
    return q, sql, "subqueries", "data retrieval", False


def t_not_in(c: Ctx):
    m, ch = c.d.main, c.d.child
    fk = ch.col("fk")
    q = c.one_of(f"Which {m.entities} have no {ch.entities}?", f"List the {m.entities} without any {ch.entity}.")
    sql = f"SELECT name FROM {m.name} WHERE id NOT IN (SELECT {fk.name} FROM {ch.name});"
    return q, sql, "subqueries", "data retrieval", True


def t_in_sub(c: Ctx):
    m, ch = c.d.main, c.d.child
    col, fk = ch.col("measure"), ch.col("fk")
    _, v = c.pick(ch, "measure", c.child_rows)
    q = c.one_of(f"Which {m.entities} have at least one {ch.entity} with {col.noun} over {v}?",
                 f"Find {m.entities} that had a {ch.entity} whose {col.noun} was above {v}.")
    sql = f"SELECT name FROM {m.name} WHERE id IN (SELECT {fk.name} FROM {ch.name} WHERE {col.name} > {_literal(v)});"
    return q, sql, "subqueries", "data retrieval", True


def t_delete(c: Ctx):
    m = c.d.main
    col, v = c.pick(m, "year")
    q = c.one_of(f"Delete all {m.entities} with a {col.noun} before {v}.", f"Remove {m.entities} whose {col.noun} is earlier than {v}.")
    return q, f"DELETE FROM {m.name} WHERE {col.name} < {v};", "basic SQL", "data manipulation", False


def t_update(c: Ctx):
    m = c.d.main
    cat, v = c.pick(m, "category")
    col = m.col("measure")
    pct = c.rng.choice([5, 10, 20])
    q = c.one_of(f"Increase the {col.noun} of every {m.entity} in {cat.noun} {v} by {pct}%.",
                 f"Raise {col.noun} by {pct} percent for {v} {m.entities}.")
    sql = f"UPDATE {m.name} SET {col.name} = {col.name} * {1 + pct / 100} WHERE {cat.name} = {_literal(v)};"
    return q, sql, "basic SQL", "data manipulation", False


TEMPLATES: list[tuple[Template, int]] = [  # (template, weight)
    (t_filter_category, 3), (t_filter_measure, 3), (t_between_years, 2), (t_lookup, 2), (t_two_conditions, 2),
    (t_count, 3), (t_agg, 3), (t_group_count, 2), (t_group_avg, 2), (t_having, 2), (t_top_n, 3), (t_order, 1),
    (t_join, 2), (t_join_filter, 2), (t_join_group, 2), (t_above_avg, 2), (t_not_in, 1), (t_in_sub, 1),
    (t_delete, 1), (t_update, 1),
]


# ---------------------------------------------------------------- generation


def _gold_ok(context: str, sql: str) -> bool:
    """The gold must run on its own context; a SELECT must return rows, a change must touch some."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(context)
        cur = con.execute(sql)
        if sql.lstrip().upper().startswith("SELECT"):
            rows = cur.fetchall()
            return bool(rows) and rows != [(None,)]
        return con.total_changes > 0 and cur.rowcount > 0
    except sqlite3.Error:
        return False
    finally:
        con.close()


def example(rng: random.Random, index: int) -> Row:
    """One verified example; retried with fresh draws until its gold query executes with a result."""
    templates, weights = zip(*TEMPLATES)
    for _ in range(50):
        d = rng.choice(DOMAINS)
        main_rows = _make_rows(rng, d.main, rng.randint(4, 6), None)
        child_rows = _make_rows(rng, d.child, rng.randint(4, 6), [r[0] for r in main_rows])
        ctx = Ctx(d, rng, main_rows, child_rows)
        template = rng.choices(templates, weights)[0]
        question, sql, complexity, task, needs_child = template(ctx)
        context = _ddl(d.main, main_rows) + (" " + _ddl(d.child, child_rows) if needs_child else "")
        if _gold_ok(context, sql):
            return Row(
                id=f"builtin-{index:06d}",
                question=question,
                context=context,
                sql=sql,
                metadata={"sql_complexity": complexity, "sql_task_type": task, "domain": d.name},
            )
    raise RuntimeError(f"could not build a verified example at index {index}")  # pragma: no cover


def generate(n: int, seed: int = 42) -> list[Row]:
    """`n` verified examples, the same for the same seed."""
    rng = random.Random(seed)
    return [example(rng, i) for i in range(n)]
