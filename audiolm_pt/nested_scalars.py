"""Flattening nested result dicts to their numeric leaves, `{'a/b/c': value}`. Kept apart from
`audiolm_pt.evaluate`, whose package import registers every evaluator (and loads JAX), so that
readers of saved results (`audiolm_pt.collect`) start quickly."""

from collections.abc import Mapping
from typing import Any


def scalars(results: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flattens the numeric leaves of nested results to {'a/b/c': value}."""
    out = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(scalars(value, name + "/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
