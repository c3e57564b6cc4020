"""Tolerant manifest I/O shared by the readers: bad bytes and bad rows become markers.

Text is decoded with ``errors="surrogateescape"`` so that one non-UTF-8 caption does not
make the whole file unreadable; ``records.caption_problem`` then flags that caption.
"""

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.records import MalformedRow


def read_text(path: Path) -> str:
    data = Path(path).read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="surrogateescape")


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict | MalformedRow]]:
    """(``file:line``, parsed object or MalformedRow) for each non-blank line."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        where = f"{path.name}:{number}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield where, MalformedRow(where, f"invalid JSON: {error.msg}")
            continue
        if not isinstance(row, dict):
            yield where, MalformedRow(where, "not a JSON object")
            continue
        yield where, row


def csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict | MalformedRow]]:
    """(``file:line``, row dict or MalformedRow); a row is malformed if a required cell is
    missing or it has more cells than the header. A header lacking a required column is a
    corrupt source, not a bad row, and raises ValueError."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: header lacks column(s) {missing}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            where = f"{path.name}:{reader.line_num}"
            yield where, MalformedRow(where, f"CSV error: {error}")
            continue
        where = f"{path.name}:{reader.line_num}"
        if None in row or any(row.get(c) is None for c in required):
            yield where, MalformedRow(where, "wrong number of cells")
        else:
            yield where, row


def first_existing(source_dir: Path, patterns: tuple[str, ...], fields: dict) -> Path | None:
    """The first pattern, formatted with ``fields`` and resolved against ``source_dir``, that
    names an existing file; the first candidate if none does (it is then reported missing).
    Patterns that need a field absent from ``fields`` are skipped; None if all are."""
    candidates = []
    for pattern in patterns:
        try:
            candidates.append(Path(source_dir) / pattern.format(**fields))
        except KeyError:
            continue
    return next((c for c in candidates if c.is_file()), candidates[0] if candidates else None)
