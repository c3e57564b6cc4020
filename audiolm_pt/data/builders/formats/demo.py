"""The demo corpus format: ``manifest.jsonl``, one JSON object per clip.

Each row: ``{"id", "split", "audio" (path relative to the corpus), "duration", "captions":
[{"text", "style"}], "labels": {task: str or [str]}, ...}``. Rows that are not valid JSON
carry no split; they are counted in the ``train`` split's report (the first split's if there
is no train split).
"""

import re
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.formats.text_io import jsonl_rows
from audiolm_pt.data.builders.records import ClipRecord, MalformedRow, SourceFormat

MANIFEST = "manifest.jsonl"
_SPLIT_NAME = re.compile(r"^\w+$")


def list_splits(source_dir: Path, options) -> list[str]:
    splits = {
        row.get("split")
        for _, row in jsonl_rows(Path(source_dir) / MANIFEST)
        if isinstance(row, dict) and isinstance(row.get("split"), str)
    }
    return sorted(s for s in splits if _SPLIT_NAME.match(s))


def read(source_dir: Path, split: str, options) -> Iterator[ClipRecord | MalformedRow]:
    splits = list_splits(source_dir, options)
    home = "train" if "train" in splits else splits[0]
    for where, row in jsonl_rows(Path(source_dir) / MANIFEST):
        if isinstance(row, MalformedRow):
            if split == home:
                yield row
        elif row.get("split") == split:
            yield _record(source_dir, where, row)
        elif split == home and not (
            isinstance(row.get("split"), str) and _SPLIT_NAME.match(row["split"])
        ):
            yield MalformedRow(where, "missing or invalid split")


def _record(source_dir: Path, where: str, row: dict) -> ClipRecord | MalformedRow:
    clip_id, audio = row.get("id"), row.get("audio")
    captions, labels = row.get("captions", []), row.get("labels", {})
    if not (isinstance(clip_id, str) and clip_id and isinstance(audio, str) and audio):
        return MalformedRow(where, "missing id or audio")
    if not isinstance(captions, list) or not isinstance(labels, dict):
        return MalformedRow(where, "captions must be a list and labels an object")
    duration = row.get("duration")
    return ClipRecord(
        id=clip_id,
        audio=Path(source_dir) / audio,
        captions=tuple(
            (c.get("text"), c.get("style", "")) if isinstance(c, dict) else (None, "")
            for c in captions
        ),
        labels=tuple(
            (task, str(value))
            for task, values in labels.items()
            for value in (values if isinstance(values, list) else [values])
            if value is not None
        ),
        expected_seconds=float(duration) if isinstance(duration, int | float) else None,
    )


FORMAT = SourceFormat(list_splits=list_splits, read=read, default_style="short")
