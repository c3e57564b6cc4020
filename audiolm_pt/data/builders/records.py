"""What source-format readers yield (clip records, malformed-row markers), the reader
interface, and the checks that decide whether a caption or label text is usable."""

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from audiolm_pt.data.schema import CAPTION_STYLES

# Clotho and AudioCaps captions stay under 300 characters, WavCaps' under 1,000.
LONG_CAPTION_CHARS = 1000


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip as its manifest describes it, before any audio is read.

    ``start``/``duration`` (seconds) select a segment of the file (Lhotse cuts); ``duration``
    None means the whole file. ``expected_seconds`` is the length the manifest promises, used
    to detect truncated audio; None when the manifest does not say.
    """

    id: str
    audio: Path
    captions: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...] = ()
    start: float = 0.0
    duration: float | None = None
    expected_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class MalformedRow:
    """A manifest row that could not be turned into a clip; ``where`` is ``file:line``."""

    where: str
    why: str


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates (undecodable bytes), which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def caption_note(text: str) -> str | None:
    """A remark on a usable caption, for the build report: one longer than any caption corpus
    writes is more likely a parsing accident (a merged row, a description field) than a
    caption."""
    return f"over_{LONG_CAPTION_CHARS}_chars" if len(text) > LONG_CAPTION_CHARS else None


def caption_problem(text: str, style: str) -> str | None:
    """Why a caption cannot be used, or None if it can.

    Readers decode with ``errors="surrogateescape"`` so that invalid UTF-8 survives as lone
    surrogates and is caught here instead of failing the whole file.
    """
    if not isinstance(text, str) or not text.strip():
        return "empty"
    if not is_utf8(text):
        return "non_utf8"
    if style not in CAPTION_STYLES:
        return "unknown_style"
    return None


class SourceFormat(NamedTuple):
    """A source format: which splits a source directory holds, and how to read one.

    ``read(source_dir, split, options)`` yields ClipRecord or MalformedRow in manifest order;
    ``default_style`` tags captions when the manifest does not name a style.
    """

    list_splits: Callable[[Path, Any], list[str]]
    read: Callable[[Path, str, Any], Iterator["ClipRecord | MalformedRow"]]
    default_style: str
