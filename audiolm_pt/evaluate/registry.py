"""The evaluator registry: an evaluator is `fn(context, **options) -> results` (a nested dict
of numbers and notes), registered under a name and chosen by name on the command line, in the
trainer's hook or in a config."""

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from audiolm_pt.nested_scalars import scalars  # noqa: F401  (registry.scalars stays public)

log = logging.getLogger(__name__)
Evaluator = Callable[..., dict[str, Any]]
_REGISTRY: dict[str, Evaluator] = {}


def register(name: str) -> Callable[[Evaluator], Evaluator]:
    def add(fn: Evaluator) -> Evaluator:
        _REGISTRY[name] = fn
        return fn

    return add


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Evaluator:
    if name not in _REGISTRY:
        raise ValueError(f"unknown evaluator {name!r}; known: {names()}")
    return _REGISTRY[name]


def run_all(
    context: Any, evals: Iterable[str], options: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Runs each named evaluator with its options, logging one line as each starts and ends;
    an unknown option key fails naming it."""
    options = options or {}
    unknown = set(options) - set(evals)
    if unknown:
        raise ValueError(f"options given for evaluators not run: {sorted(unknown)}")
    fns = {name: get(name) for name in evals}
    results = {}
    for i, (name, fn) in enumerate(fns.items(), 1):
        log.info("evaluate [%d/%d] %s ...", i, len(fns), name)
        start = time.monotonic()
        results[name] = fn(context, **dict(options.get(name, {})))
        log.info("evaluate [%d/%d] %s done in %.0f s", i, len(fns), name, time.monotonic() - start)
    return results
