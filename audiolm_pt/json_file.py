"""Reading a JSON object from a local file, with errors that name the file."""

import json
from pathlib import Path
from typing import Any


def read_object(file: str | Path) -> dict[str, Any]:
    """The JSON object in `file`; malformed content or another JSON type is a ValueError
    naming the file."""
    try:
        value = json.loads(Path(file).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(value).__name__}")
    return value
