"""Frozen-dataclass configs built from plain dicts (or ConfigDicts) that refuse unknown keys.

A typo in an experiment config must stop the run at start-up with the key named, instead of
silently training with the default. Nested dataclass fields are built recursively and lists
become tuples, so configs stay hashable (they are static arguments of jitted functions).
Pure Python: the model and train-step code import it without the data stack.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: Mapping[str, Any], section: str = "") -> T:
    """``cls(**values)``; an unknown key fails naming ``section.key``."""
    if hasattr(values, "to_dict"):
        values = values.to_dict()
    prefix = f"{section}." if section else ""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown config key {prefix + unknown[0]!r} for {cls.__name__}; known: {sorted(known)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        nested = _dataclass_in(hints[key])
        if nested is not None and isinstance(value, Mapping):
            value = from_dict(nested, value, prefix + key)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _dataclass_in(hint: Any) -> type | None:
    candidates = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return next(
        (c for c in candidates if isinstance(c, type) and dataclasses.is_dataclass(c)), None
    )
