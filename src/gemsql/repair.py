"""Schema repair: an answer that names a table or column its database lacks, rewritten from the database's own schema.

A small model often qualifies a column with the wrong table (`T2.name` where only T1 has `name`), or asks a table for
a column that lives one foreign key away: it left out a join. It also misspells a table or column the way the ones it
trained on were spelled (`student_course_enrollment` for `Student_Course_Enrolment`). When no beam of execution-guided
decoding runs either, the schema still knows where the table or column is. `repairs` proposes rewrites, the most
conservative first; the caller keeps the first that runs on the database (`gemsql.generate.repaired`), so an answer
that runs is never touched and a rewrite that does not run is never kept.
"""

from __future__ import annotations

import difflib
import sqlite3
from dataclasses import dataclass

from sqlglot import exp

from gemsql.data.schema import quote_identifier
from gemsql.evaluate.score import parse_statements


@dataclass(frozen=True)
class Schema:
    """Tables, their columns and the foreign keys between them; names in lower case (SQLite's are case-blind)."""

    columns: dict[str, frozenset[str]]
    links: tuple[tuple[str, str, str, str], ...]  # (table, column, referenced table, referenced column)


def database_schema(con: sqlite3.Connection) -> Schema:
    """The schema of a database, through SELECTs only (the sandbox's authorizer denies PRAGMA): each table's columns
    from an empty SELECT, its foreign keys from its CREATE statement."""
    tables = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                         "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
    columns = {}
    for name, _ in tables:
        cursor = con.execute(f"SELECT * FROM {quote_identifier(name)} LIMIT 0")
        columns[name.lower()] = frozenset(d[0].lower() for d in cursor.description)
    links = []
    for name, ddl in tables:
        trees = parse_statements(ddl)
        if isinstance(trees, tuple) and trees:  # a table the parser cannot read just has no links to offer
            links += [(name.lower(), *link) for link in _foreign_keys(trees[0], columns)]
    return Schema(columns, tuple(links))


def _foreign_keys(create: exp.Expression, columns: dict[str, frozenset[str]]) -> list[tuple[str, str, str]]:
    """(column, referenced table, referenced column) of a CREATE TABLE: table constraints and column REFERENCES.
    A reference without columns names the parent's column of the same name, where it has one."""
    found = []

    def add(cols: list[str], target: exp.Expression) -> None:
        table = target.this if isinstance(target, exp.Schema) else target
        parent = table.name.lower()
        refs = [c.name.lower() for c in target.expressions] if isinstance(target, exp.Schema) else []
        for i, col in enumerate(cols):
            ref = refs[i] if i < len(refs) else col
            if ref in columns.get(parent, ()):
                found.append((col, parent, ref))

    for fk in create.find_all(exp.ForeignKey):
        if fk.args.get("reference") is not None:
            add([c.name.lower() for c in fk.expressions], fk.args["reference"].this)
    for column in create.find_all(exp.ColumnDef):
        for constraint in column.args.get("constraints") or []:
            if isinstance(constraint.kind, exp.Reference):
                add([column.name.lower()], constraint.kind.this)
    return found


def repairs(sql: str, schema: Schema) -> list[str]:
    """Rewrites of a query that names a table or column its database lacks, the most conservative first: (0) a table
    the database does not have, renamed to the one table spelled almost the same (any query); then, for a single
    SELECT whose columns are not all in its tables: (1) a qualified column moved to the one table of the query that
    has it; (2) a column none of the query's tables has, renamed to the one column of those tables spelled almost the
    same; (3) the table that has a column none of the query's tables has, joined along a foreign key (either way)
    to a table of the query. Empty when nothing applies."""
    trees = parse_statements(sql)  # never raises, even on an answer nested too deeply
    if not isinstance(trees, tuple) or len(trees) != 1:
        return []  # not SQL, or more than one statement
    tree = trees[0]
    renamed = _respelled(tree, schema)
    found = [renamed] if renamed is not None else []
    tree = renamed or tree
    # column rules: one query block (no set operation, no subquery), whose tables are the scope of every column
    if isinstance(tree, exp.Select) and all(s is tree for s in tree.find_all(exp.Select)):
        found += [f for f in (_requalified(tree, schema), _respelled_columns(tree, schema), _joined(tree, schema))
                  if f is not None]
    return list(dict.fromkeys(f.sql(dialect="sqlite") for f in found))


# How alike (difflib's ratio, lower case) a missing table's or column's name and a real one must be to be taken for a
# misspelling:
# enrollment/enrolment is 0.98, student/students 0.93; customer_contacts/customer_contact_channels (two tables) 0.81.
SPELLING_RATIO = 0.88


def _closest(name: str, candidates: list[tuple[str, object]]):
    """The value of the one candidate (spelling, value) spelled most like `name` (lower case), if it is alike enough
    (SPELLING_RATIO) and no other is as alike; else None."""
    scores = sorted(((difflib.SequenceMatcher(None, name.lower(), spelling).ratio(), i)
                     for i, (spelling, _) in enumerate(candidates)), reverse=True)
    if not scores or scores[0][0] < SPELLING_RATIO or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return None
    return candidates[scores[0][1]][1]


def _respelled(tree: exp.Expression, schema: Schema) -> exp.Expression | None:
    """The query with each table its database lacks renamed to the one table whose name is spelled almost the same,
    the old name kept as the alias where it had none (so columns qualified with it still resolve); None when no table
    is missing, or one has no such single match. The query's own CTE names are not tables to rename."""
    tree = tree.copy()
    ctes = {c.alias.lower() for c in tree.find_all(exp.CTE)}
    missing = [t for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in schema.columns
               and t.name.lower() not in ctes]
    if not missing:
        return None
    for t in missing:
        real = _closest(t.name, [(name, name) for name in schema.columns])
        if real is None:
            return None
        old = t.name
        t.set("this", exp.to_identifier(real))
        if not t.alias:
            t.set("alias", exp.TableAlias(this=exp.to_identifier(old)))
    return tree


def _scope(tree: exp.Select) -> dict[str, str]:
    """Alias (or name, where none) -> table, lower case, for the tables of the query."""
    return {(t.alias or t.name).lower(): t.name.lower() for t in tree.find_all(exp.Table)}


def _spelled(tree: exp.Select) -> dict[str, str]:
    """Alias (or name), lower case -> as the query spells it, for the rewrite to keep the query's spelling."""
    return {(t.alias or t.name).lower(): t.alias or t.name for t in tree.find_all(exp.Table)}


def _unknown(tree: exp.Select, scope: dict[str, str], schema: Schema) -> list[exp.Column]:
    """Columns none of whose possible tables has them (an unqualified name may also be a SELECT alias)."""
    aliases = {a.alias.lower() for a in tree.expressions if isinstance(a, exp.Alias)}
    out = []
    for c in tree.find_all(exp.Column):
        name, table = c.name.lower(), c.table.lower()
        if not name or (not table and name in aliases):
            continue
        tables = [scope[table]] if table in scope else [] if table else list(scope.values())
        if not any(name in schema.columns.get(t, ()) for t in tables):
            out.append(c)
    return out


def _requalified(tree: exp.Select, schema: Schema) -> exp.Select | None:
    tree = tree.copy()
    scope, spelled = _scope(tree), _spelled(tree)
    changed = False
    for c in _unknown(tree, scope, schema):
        owners = [alias for alias, t in scope.items() if c.name.lower() in schema.columns.get(t, ())]
        if c.table and len(owners) == 1:
            c.set("table", exp.to_identifier(spelled[owners[0]]))
            changed = True
    return tree if changed else None


def _respelled_columns(tree: exp.Select, schema: Schema) -> exp.Select | None:
    """The query with each column none of its tables has renamed to the one column of those tables spelled almost the
    same (`date_of_enrollment` for `date_of_enrolment`), qualified with that column's table where it was qualified;
    None when a column has no such single match."""
    tree = tree.copy()
    scope, spelled = _scope(tree), _spelled(tree)
    unknown = _unknown(tree, scope, schema)
    if not unknown:
        return None
    for c in unknown:
        # one best column: the same name in two of the query's tables is as ambiguous as two close names
        best = _closest(c.name, [(real, (real, alias)) for alias, t in scope.items()
                                 for real in schema.columns.get(t, ())])
        if best is None:
            return None
        real, alias = best
        c.set("this", exp.to_identifier(real))
        if c.table:
            c.set("table", exp.to_identifier(spelled[alias]))
    return tree


def _joined(tree: exp.Select, schema: Schema) -> exp.Select | None:
    tree = tree.copy()
    scope, spelled = _scope(tree), _spelled(tree)
    unknown = _unknown(tree, scope, schema)
    if not unknown:
        return None
    name = unknown[0].name.lower()
    for owner in (t for t, cols in schema.columns.items() if name in cols and t not in scope.values()):
        link = _link(owner, scope, schema)
        if link is None:
            continue
        owner_col, alias, col = link
        new = next(f"J{k}" for k in range(1, len(scope) + 2) if f"j{k}" not in scope)
        # qualify the query's own columns first: after the join a name both tables have would be ambiguous
        for c in tree.find_all(exp.Column):
            owners = [a for a, t in scope.items() if c.name.lower() in schema.columns.get(t, ())]
            if not c.table and len(owners) == 1:
                c.set("table", exp.to_identifier(spelled[owners[0]]))
        for c in unknown:
            if c.name.lower() in schema.columns[owner]:
                c.set("table", exp.to_identifier(new))
        return tree.join(exp.to_table(owner).as_(new),
                         on=exp.column(owner_col, new).eq(exp.column(col, spelled[alias])))
    return None


def _link(owner: str, scope: dict[str, str], schema: Schema) -> tuple[str, str, str] | None:
    """(owner's column, alias of a query table, its column) of the first foreign key between `owner` and a table of
    the query, in either direction."""
    for table, col, parent, ref in schema.links:
        for alias, t in scope.items():
            if table == owner and parent == t:
                return col, alias, ref
            if parent == owner and table == t:
                return ref, alias, col
    return None
