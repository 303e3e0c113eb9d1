"""Writes that are all-or-nothing: a reader never sees a half-written file or folder.

Everything gemsql produces (prepared data, merged models, predictions, reports) goes through these
helpers: write under a temporary name in the same folder, then rename, which is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces `target` whole, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result should look like any folder
    try:
        yield tmp
        publish_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_dir(tmp: str | Path, target: str | Path) -> None:
    """Make the finished folder `tmp` become `target`, replacing any previous one in one rename."""
    tmp, target = Path(tmp), Path(target)
    if target.exists():
        # Move the old one aside first so that a crash between the two renames leaves one complete copy.
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def recover(target: str | Path) -> None:
    """Undo what a killed writer left beside `target`: a complete previous copy moved aside (`.NAME.old`)
    comes back if `target` is missing; unfinished temporary copies (`.NAME.*.tmp`) are removed."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if old.is_dir() and not target.exists():
        os.replace(old, target)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def file_digests(folder: str | Path) -> dict[str, str]:
    """sha256 of every file in a folder (recursively), by relative path."""
    import hashlib

    folder = Path(folder)
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digests[str(path.relative_to(folder))] = h.hexdigest()
    return digests


@contextlib.contextmanager
def atomic_file(target: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside `target`; it becomes `target` only if the block ends without error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)  # temporary copies a killed writer left
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result should look like any file
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_file(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_file(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file (gzip-compressed if named .gz); a bad line is reported with its file and line number."""
    import gzip

    from gemsql.errors import GemsqlError

    path = Path(path)
    if not path.is_file():
        raise GemsqlError("file not found", file=str(path))
    rows = []
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise GemsqlError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=str(path), row=lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise GemsqlError(f"not valid JSON: {e.msg}", file=str(path), row=lineno) from None
            if not isinstance(obj, dict):
                raise GemsqlError("each line must be a JSON object", file=str(path), row=lineno)
            rows.append(obj)
    return rows
