"""Clotho: ``clotho_captions_{development,validation,evaluation}.csv`` with columns
``file_name, caption_1..caption_5``; audio under ``<source>/{development,validation,evaluation}/``.

Clotho's ``development`` split is its training split and becomes TFDS ``train``.
"""

import re
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.formats.text_io import csv_rows
from audiolm_pt.data.builders.records import ClipRecord, MalformedRow, SourceFormat

SPLIT_NAMES = {"train": "development", "validation": "validation", "test": "evaluation"}
_CAPTION_COLUMN = re.compile(r"^caption_(\d+)$")


def _csv(source_dir: Path, native: str) -> Path:
    return Path(source_dir) / f"clotho_captions_{native}.csv"


def list_splits(source_dir: Path, options) -> list[str]:
    return [s for s, native in SPLIT_NAMES.items() if _csv(source_dir, native).is_file()]


def read(source_dir: Path, split: str, options) -> Iterator[ClipRecord | MalformedRow]:
    native = SPLIT_NAMES[split]
    style = options.caption_style or FORMAT.default_style
    for where, row in csv_rows(_csv(source_dir, native), ("file_name", "caption_1")):
        if isinstance(row, MalformedRow):
            yield row
            continue
        name = row["file_name"].strip()
        if not name:
            yield MalformedRow(where, "empty file_name")
            continue
        columns = sorted((int(m.group(1)), key) for key in row if (m := _CAPTION_COLUMN.match(key)))
        yield ClipRecord(
            id=name,
            audio=Path(source_dir) / native / name,
            captions=tuple((row[key], style) for _, key in columns),
        )


FORMAT = SourceFormat(list_splits=list_splits, read=read, default_style="short")
