"""Tolerant manifest I/O shared by the readers: bad bytes and bad rows become markers.

Text is decoded with ``errors="surrogateescape"`` so that one non-UTF-8 caption does not
make the whole file unreadable; ``records.caption_problem`` then flags that caption. A UTF-8
byte-order mark (spreadsheet programs write one) is dropped.
"""

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.records import MalformedRow


def read_text(path: Path) -> str:
    data = Path(path).read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


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
    """(``file:line``, row dict or MalformedRow) for each non-blank line after the header.

    Caption manifests hold one row per line, so each line is parsed on its own: an
    unbalanced quote spoils its own row (``unbalanced quotes``) instead of swallowing every
    row after it into one cell, as a CSV reader would. A row is also malformed if it has more
    cells than the header, lacks a required cell, or repeats an earlier row exactly
    (``duplicate row``). Cells missing from a short row read None. A header lacking a
    required column is a corrupt source, not a bad row, and raises ValueError."""
    lines = read_text(path).splitlines()
    header = _csv_cells(lines[0]) if lines else []
    missing = [c for c in required if c not in (header or [])]
    if missing:
        raise ValueError(f"{path}: header lacks column(s) {missing}")
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        where = f"{path.name}:{number}"
        if not line.strip():
            continue
        cells = _csv_cells(line)
        if cells is None:
            why = "unbalanced quotes" if line.count('"') % 2 else "CSV quoting error"
            yield where, MalformedRow(where, why)
        elif len(cells) > len(header):
            yield where, MalformedRow(where, "wrong number of cells")
        elif line in seen:
            yield where, MalformedRow(where, "duplicate row")
        else:
            seen.add(line)
            row = dict(zip(header, cells, strict=False)) | dict.fromkeys(header[len(cells) :])
            if any(row[c] is None for c in required):
                yield where, MalformedRow(where, "wrong number of cells")
            else:
                yield where, row


def _csv_cells(line: str) -> list[str] | None:
    """The cells of one CSV line, or None when its quoting is broken."""
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None


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
