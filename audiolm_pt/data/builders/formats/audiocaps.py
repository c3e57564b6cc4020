"""AudioCaps: ``train.csv``/``val.csv``/``test.csv`` with columns ``audiocap_id, youtube_id,
start_time, caption``; rows sharing a ``youtube_id`` are one clip with several captions.

Audio is found by the first existing of ``options.audio_patterns`` (or ``AUDIO_PATTERNS``),
formatted with ``split`` (the CSV's name: train/val/test), ``youtube_id``, ``audiocap_id`` and
``start_time``, relative to the source directory.
"""

from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.formats.text_io import csv_rows, first_existing
from audiolm_pt.data.builders.records import ClipRecord, MalformedRow, SourceFormat

SPLIT_FILES = {"train": "train", "validation": "val", "test": "test"}
AUDIO_PATTERNS = (
    "audio/{split}/{youtube_id}.wav",
    "audio/{split}/Y{youtube_id}.wav",
    "audio/{split}/{audiocap_id}.wav",
)
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


def list_splits(source_dir: Path, options) -> list[str]:
    return [s for s, f in SPLIT_FILES.items() if (Path(source_dir) / f"{f}.csv").is_file()]


def read(source_dir: Path, split: str, options) -> Iterator[ClipRecord | MalformedRow]:
    native = SPLIT_FILES[split]
    style = options.caption_style or FORMAT.default_style
    patterns = options.audio_patterns or AUDIO_PATTERNS
    clips: dict[str, tuple[dict, list[tuple[str, str]]]] = {}
    for where, row in csv_rows(Path(source_dir) / f"{native}.csv", COLUMNS):
        if isinstance(row, MalformedRow):
            yield row
        elif not row["youtube_id"].strip():
            yield MalformedRow(where, "empty youtube_id")
        else:
            first, captions = clips.setdefault(row["youtube_id"].strip(), (row, []))
            captions.append((row["caption"], style))
    for youtube_id, (first, captions) in clips.items():
        fields = {
            "split": native,
            "youtube_id": youtube_id,
            "audiocap_id": first["audiocap_id"].strip(),
            "start_time": first["start_time"].strip(),
        }
        yield ClipRecord(
            id=youtube_id,
            audio=first_existing(source_dir, patterns, fields),
            captions=tuple(captions),
        )


FORMAT = SourceFormat(list_splits=list_splits, read=read, default_style="short")
