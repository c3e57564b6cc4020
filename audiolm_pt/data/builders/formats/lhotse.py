"""Lhotse CutSet manifests (``*.jsonl.gz``, as CaptionStew's recipes write them).

Each line is a MonoCut; its captions are every supervision's ``custom.caption`` (a string or a
list) or, failing that, its ``text``. The cut's ``start``/``duration`` select a segment of the
recording's single ``file`` source (relative paths resolve against the source directory).
The split comes from the file name: a name token ``test``/``eval``/``evaluation`` gives
``test``, ``val``/``valid``/``validation``/``dev`` gives ``validation``, anything else
(including Clotho's ``development``) gives ``train``.
"""

import re
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.formats.text_io import jsonl_rows
from audiolm_pt.data.builders.records import ClipRecord, MalformedRow, SourceFormat

_TEST = {"test", "eval", "evaluation"}
_VALIDATION = {"val", "valid", "validation", "dev"}


def split_of(path: Path) -> str:
    tokens = set(re.split(r"[^a-z0-9]+", path.name.lower()))
    if tokens & _TEST:
        return "test"
    return "validation" if tokens & _VALIDATION else "train"


def _files(source_dir: Path) -> list[Path]:
    return sorted(Path(source_dir).rglob("*.jsonl.gz"))


def list_splits(source_dir: Path, options) -> list[str]:
    return sorted({split_of(p) for p in _files(source_dir)})


def read(source_dir: Path, split: str, options) -> Iterator[ClipRecord | MalformedRow]:
    style = options.caption_style or FORMAT.default_style
    for path in _files(source_dir):
        if split_of(path) != split:
            continue
        for where, cut in jsonl_rows(path):
            yield cut if isinstance(cut, MalformedRow) else _record(source_dir, where, cut, style)


def _record(source_dir: Path, where: str, cut: dict, style: str) -> ClipRecord | MalformedRow:
    if cut.get("type", "MonoCut") != "MonoCut":
        return MalformedRow(where, f"unsupported cut type {cut.get('type')!r}")
    recording = cut.get("recording")
    sources = recording.get("sources") if isinstance(recording, dict) else None
    start, duration = cut.get("start", 0.0), cut.get("duration")
    if not (
        isinstance(cut.get("id"), str)
        and isinstance(start, int | float)
        and isinstance(duration, int | float)
        and start >= 0
        and duration > 0
        and isinstance(sources, list)
        and sources
        and isinstance(sources[0], dict)
    ):
        return MalformedRow(
            where, "missing id, start, duration or recording sources, or a negative span"
        )
    source = sources[0]
    if source.get("type") != "file" or not isinstance(source.get("source"), str):
        return MalformedRow(where, f"unsupported audio source type {source.get('type')!r}")
    return ClipRecord(
        id=cut["id"],
        audio=Path(source_dir) / source["source"],
        captions=tuple((text, style) for text in _captions(cut.get("supervisions"))),
        start=float(start),
        duration=float(duration),
        expected_seconds=float(duration),
    )


def _captions(supervisions) -> list:
    captions = []
    for sup in supervisions if isinstance(supervisions, list) else []:
        if not isinstance(sup, dict):
            continue
        custom = sup.get("custom") if isinstance(sup.get("custom"), dict) else {}
        caption = custom.get("caption", sup.get("text"))
        captions.extend(caption if isinstance(caption, list) else [caption])
    return [c for c in captions if c is not None]


FORMAT = SourceFormat(list_splits=list_splits, read=read, default_style="short")
