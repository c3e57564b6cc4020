"""WavCaps-style JSON: one file per sub-source (FreeSound, BBC_Sound_Effects, SoundBible,
AudioSet_SL), each ``{"data": [{"id", "caption", "audio" | "file_name" | "wav_path",
"duration", ...}]}``. Everything is one ``train`` split.

The sub-source is the JSON file's stem; example ids are ``<sub-source>/<id>`` so that ids stay
unique across sub-sources. Audio is the first existing of ``options.audio_patterns`` (or
``AUDIO_PATTERNS``), formatted with ``subsource``, ``id``, ``file`` (the entry's audio path, when
it has one) and ``basename`` (that path's file name), relative to the source directory.
The entries' ``duration`` is not used to detect truncated audio: only manifests written for the
exact files at hand (demo, Lhotse) are trusted for that; truncated FLAC still fails to decode.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.data.builders.formats.text_io import first_existing, read_text
from audiolm_pt.data.builders.records import ClipRecord, MalformedRow, SourceFormat

AUDIO_PATTERNS = (
    "{file}",
    "{subsource}/{file}",
    "{subsource}/{basename}",
    "{subsource}/{id}.flac",
    "{subsource}/{id}.wav",
)
_AUDIO_KEYS = ("audio", "file_name", "wav_path")


def _json_files(source_dir: Path) -> list[Path]:
    return sorted(Path(source_dir).rglob("*.json"))


def list_splits(source_dir: Path, options) -> list[str]:
    return ["train"] if _json_files(source_dir) else []


def read(source_dir: Path, split: str, options) -> Iterator[ClipRecord | MalformedRow]:
    style = options.caption_style or FORMAT.default_style
    patterns = options.audio_patterns or AUDIO_PATTERNS
    for path in _json_files(source_dir):
        try:
            entries = json.loads(read_text(path)).get("data")
        except (json.JSONDecodeError, AttributeError):
            entries = None
        if not isinstance(entries, list):
            yield MalformedRow(path.name, 'not a JSON object with a "data" list')
            continue
        for index, entry in enumerate(entries):
            yield _record(source_dir, f"{path.name}:{index}", path.stem, entry, style, patterns)


def _record(source_dir, where, subsource, entry, style, patterns) -> ClipRecord | MalformedRow:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str | int):
        return MalformedRow(where, "entry without an id")
    fields = {"subsource": subsource, "id": str(entry["id"])}
    audio = next((entry[k] for k in _AUDIO_KEYS if isinstance(entry.get(k), str)), None)
    if audio:
        fields.update(file=audio, basename=Path(audio).name)
    path = first_existing(source_dir, patterns, fields)
    if path is None:
        return MalformedRow(where, "no audio pattern applies to this entry")
    return ClipRecord(
        id=f"{subsource}/{entry['id']}",
        audio=path,
        captions=((entry.get("caption"), style),),
    )


FORMAT = SourceFormat(list_splits=list_splits, read=read, default_style="short")
