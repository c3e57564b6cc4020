"""Frozen-dataclass configs built from plain dicts (or ConfigDicts) that refuse unknown keys
and values of the wrong type.

A typo in an experiment config must stop the run at start-up with the key named, instead of
silently training with the default. Values are checked against the field's type hint (ints
are accepted where floats are expected, lists where tuples are), nested dataclass fields are
built recursively and lists become tuples, so configs stay hashable (they are static
arguments of jitted functions). Pure Python: the model and train-step code import it without
the data stack.
"""

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
# Scalar field types and the Python types their values may have (ints become floats).
_SCALARS = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def from_dict(cls: type[T], values: Mapping[str, Any], section: str = "") -> T:
    """``cls(**values)``; an unknown key or a value of the wrong type fails naming
    ``section.key``."""
    if hasattr(values, "to_dict"):
        values = values.to_dict()
    if not isinstance(values, Mapping):
        raise ValueError(
            f"config key {section or cls.__name__}: expected a mapping, got {values!r}"
        )
    prefix = f"{section}." if section else ""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown config key {prefix + unknown[0]!r} for {cls.__name__}; known: {sorted(known)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {key: typed(hints[key], value, prefix + key) for key, value in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as err:
        message = str(err)
        if not section or message.startswith(prefix):
            raise
        # The section's own checks name the field; the prefix says where it sits.
        head = re.split(r"[=:\s.]", message, maxsplit=1)[0]
        raise ValueError(prefix + message if head in known else f"{section}: {message}") from None


class _MismatchError(ValueError):
    """`value` at `key` is not a `hint`."""

    def __init__(self, key: str, hint: Any, value: Any):
        super().__init__(f"config key {key}: expected {_name(hint)}, got {value!r}")


def typed(hint: Any, value: Any, key: str) -> Any:
    """`value` checked against type `hint` (and converted: lists to tuples, ints to floats,
    mappings to nested dataclasses); a mismatch fails naming `key`."""
    try:
        return _convert(hint, value, key)
    except _MismatchError as err:
        raise ValueError(str(err)) from None


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (types.UnionType, typing.Union):
        for candidate in args:
            try:
                return _convert(candidate, value, key)
            except _MismatchError:
                continue
        raise _MismatchError(key, hint, value)
    if hint is type(None):
        if value is None:
            return None
        raise _MismatchError(key, hint, value)
    if origin is typing.Literal:
        if value in args:
            return value
        raise _MismatchError(key, hint, value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping) or hasattr(value, "to_dict"):
            return from_dict(hint, value, key)
        raise _MismatchError(key, hint, value)
    if hint in _SCALARS:
        # bool is an int subclass: only a bool field takes one.
        if isinstance(value, _SCALARS[hint]) and (hint is bool or not isinstance(value, bool)):
            return float(value) if hint is float else value
        raise _MismatchError(key, hint, value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _MismatchError(key, hint, value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise _MismatchError(key, hint, value)
        return tuple(
            _convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (Mapping, dict, typing.Mapping) or hint in (dict, Mapping):
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        if not isinstance(value, Mapping):
            raise _MismatchError(key, hint, value)
        key_hint, value_hint = args or (Any, Any)
        return {
            _convert(key_hint, k, key): _convert(value_hint, v, f"{key}.{k}")
            for k, v in value.items()
        }
    return value


def _name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
