"""Reading raw rows (question, context, sql, metadata) from the built-in set, a Hub dataset or a local file.

Every row is checked here, so a later stage never meets a missing or non-text field: the error names
the file, the row (1-based, in file order) and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemsql.config import DataConfig
from gemsql.errors import GemsqlError

KNOWN_METADATA = ("sql_complexity", "sql_task_type", "domain")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class Row:
    id: str
    question: str
    context: str
    sql: str
    metadata: dict[str, Any] = field(default_factory=dict)
    row: int | None = None  # 1-based position in the source file, for error messages


def load_rows(cfg: DataConfig, *, seed: int, builtin_rows: int | None = None, require_sql: bool = True) -> list[Row]:
    """All rows of the configured source, validated. The built-in set is generated with `seed`.

    With `require_sql=False` (questions to generate for) the SQL column may be absent or empty; `Row.sql`
    is then "" where no gold SQL is given.
    """
    if cfg.dataset == "builtin":
        from gemsql.data.builtin import generate

        return generate(builtin_rows or cfg.num_rows or 12500, seed=seed)
    path = Path(cfg.dataset)
    if _local_format(path) or path.exists():
        records, origin = _read_local(path), str(path)
    else:
        records, origin = _read_hub(cfg), f"hub:{cfg.dataset}"
    return _validate(records, cfg, origin, require_sql)


def _read_local(path: Path) -> list[dict]:
    if not path.is_file():
        raise GemsqlError("file not found", file=str(path))
    fmt = _local_format(path)
    if fmt is None:
        raise GemsqlError(f"unsupported file type '{path.suffix}'; use .jsonl, .jsonl.gz, .csv or .parquet",
                          file=str(path))
    if fmt == "json":
        from gemsql.files import read_jsonl

        return read_jsonl(path)
    try:
        if fmt == "csv":
            import csv

            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    except UnicodeDecodeError as e:
        raise GemsqlError(f"not valid UTF-8 ({e.reason})", file=str(path)) from None
    except Exception as e:  # pyarrow and csv raise many types for a damaged file
        raise GemsqlError(f"cannot read {fmt} file: {e}", file=str(path)) from None


def _local_format(path: Path) -> str | None:
    """json/csv/parquet from the file name; JSONL may be gzip-compressed (data.jsonl.gz)."""
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes[-2:] in ([".jsonl", ".gz"], [".json", ".gz"]):
        return "json"
    return LOCAL_FORMATS.get(path.suffix.lower())


def _read_hub(cfg: DataConfig) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.dataset, split=cfg.dataset_split)
    except Exception as e:
        raise GemsqlError(
            f"cannot load Hub dataset '{cfg.dataset}' (split '{cfg.dataset_split}'): {type(e).__name__}: {e}. "
            "Offline, use dataset: builtin or a local .jsonl/.csv/.parquet file."
        ) from None
    return ds.to_list()


def _validate(records: list[dict], cfg: DataConfig, origin: str, require_sql: bool = True) -> list[Row]:
    if not records:
        raise GemsqlError("the dataset has no rows", file=origin)
    required = {"question": cfg.question_column, "context": cfg.context_column, "sql": cfg.sql_column}
    first = records[0]
    if isinstance(first, dict) and "messages" in first and {"question", "context"} <= set(first) \
            and not {cfg.question_column, cfg.context_column} <= set(first):
        required = {"question": "question", "context": "context", "sql": "sql"}  # a file gemsql prepared
    for key, column in required.items():
        if column not in first and (require_sql or key != "sql"):
            have = ", ".join(sorted(map(str, first))) or "none"
            raise GemsqlError(f"column missing (columns found: {have})", file=origin, row=1, field=column)
    first_meta = first.get("metadata") if isinstance(first, dict) and isinstance(first.get("metadata"), dict) else {}
    meta_cols = (cfg.metadata_columns if cfg.metadata_columns is not None
                 else [c for c in KNOWN_METADATA if c in first or c in first_meta])
    if cfg.split_by and cfg.split_by not in meta_cols:
        meta_cols = [*meta_cols, cfg.split_by]
    rows = []
    seen_ids: dict[str, int] = {}
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            raise GemsqlError("each row must be an object of named fields", file=origin, row=i)
        values = {}
        for key, column in required.items():
            value = rec.get(column)
            if key == "sql" and not require_sql and not value:
                values[key] = ""
                continue
            if value is None:
                raise GemsqlError("missing or null", file=origin, row=i, field=column)
            if not isinstance(value, str):
                raise GemsqlError(f"must be text, got {type(value).__name__}", file=origin, row=i, field=column)
            if key != "context" and not value.strip():
                raise GemsqlError("empty", file=origin, row=i, field=column)
            values[key] = value.strip() if key != "context" else value
        # A file gemsql prepared (RUN/data/test.jsonl) keeps metadata in one nested object: read it too.
        nested = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
        metadata = {}
        for column in meta_cols:
            if column not in rec and column not in nested:
                raise GemsqlError("metadata column missing", file=origin, row=i, field=column)
            metadata[column] = rec[column] if column in rec else nested[column]
        rid = rec.get("id")
        if rid is not None:
            if str(rid) in seen_ids:
                raise GemsqlError(f"duplicate id '{rid}' (first on row {seen_ids[str(rid)]}): ids must be unique so "
                                  "results can be matched across runs", file=origin, row=i, field="id")
            seen_ids[str(rid)] = i
        rows.append(
            Row(
                id=str(rid) if rid is not None else f"row-{i}",
                metadata=metadata,
                row=i,
                **values,
            )
        )
    return rows
