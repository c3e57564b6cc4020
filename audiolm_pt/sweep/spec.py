"""Sweep files: reading `get_sweep(arg)`, the point structure, dependency order, `{root}` /
`{point_dir:NAME}` templates, and the start-up check that loads every point's config and
applies its overrides, so a bad sweep fails before anything runs, naming point and key."""

import collections
import contextlib
import copy
import dataclasses
import importlib.util
import inspect
import io
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from audiolm_pt import strict_config

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TEMPLATE = re.compile(r"\{(root|point_dir:([^{}]*))\}")


class SweepError(ValueError):
    """A sweep that cannot run; the message names the point and key."""


@dataclasses.dataclass(frozen=True)
class Point:
    name: str
    config: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    after: tuple[str, ...] = ()
    evals: tuple[str, ...] = ()
    eval_options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    eval_flags: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    points: tuple[Point, ...]


def grid(
    axes: Mapping[str, Sequence[Any]], make: Callable[[dict[str, Any]], Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One point per combination of the axes' values (the first axis varies slowest):
    `make(values)` returns the point, whose tags default to `values`."""
    points = []
    for combination in itertools.product(*axes.values()):
        values = dict(zip(axes, combination, strict=True))
        point = dict(make(values))
        point["tags"] = {**values, **point.get("tags", {})}
        points.append(point)
    return points


def parse_arg(arg: str | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` updated from "key=value,key=value"; a value takes its default's type, and a
    tuple's items are separated by "+" (e.g. "fractions=0.1+1.0")."""
    values = dict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, text = item.partition("=")
        if not sep or key not in defaults:
            raise SweepError(f"sweep arg {item!r}: expected key=value, key one of {list(defaults)}")
        default = defaults[key]
        try:
            if isinstance(default, tuple):
                kind = type(default[0]) if default else str
                values[key] = tuple(_typed(kind, t) for t in text.split("+"))
            else:
                values[key] = _typed(type(default), text)
        except ValueError as err:
            raise SweepError(f"sweep arg {key}={text!r}: {err}") from err
    return values


def _typed(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError("expected true or false")
        return text.lower() == "true"
    return kind(text)


def import_file(path: str) -> Any:
    """The Python module at `path` (a config or sweep file; `configs.*` imports resolve from
    the working directory, as under `python -m`)."""
    file = Path(path)
    if not file.is_file():
        raise SweepError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"_sweep_file_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sweep(spec: str) -> Sweep:
    """Reads "path/to/sweep.py[:arg]" and checks its structure (`check` does the configs)."""
    path, _, arg = spec.partition(":")
    module = import_file(path)
    if not hasattr(module, "get_sweep"):
        raise SweepError(f"{path}: no get_sweep(arg) function")
    return parse_sweep(module.get_sweep(arg or None))


def parse_sweep(values: Mapping[str, Any]) -> Sweep:
    unknown = sorted(set(values) - {"name", "points"})
    if unknown:
        raise SweepError(f"unknown sweep key {unknown[0]!r}; known: ['name', 'points']")
    if not values.get("name") or not values.get("points"):
        raise SweepError("a sweep needs a name and at least one point")
    points = []
    for i, raw in enumerate(values["points"]):
        try:
            points.append(strict_config.from_dict(Point, raw))
        except (TypeError, ValueError) as err:
            raise SweepError(f"point {raw.get('name', f'#{i}')!r}: {err}") from err
    sweep = Sweep(str(values["name"]), tuple(points))
    _check_structure(sweep)
    return sweep


def _check_structure(sweep: Sweep) -> None:
    names = [p.name for p in sweep.points]
    for point in sweep.points:
        if not _NAME.match(point.name):
            raise SweepError(f"point {point.name!r}: name must match {_NAME.pattern}")
    duplicates = sorted(n for n, c in collections.Counter(names).items() if c > 1)
    if duplicates:
        raise SweepError(f"point {duplicates[0]!r}: duplicate name")
    for point in sweep.points:
        for dep in point.after:
            if dep not in names:
                raise SweepError(f"point {point.name!r}: after: unknown point {dep!r}")
        for key, value in point.overrides.items():
            for ref in _template_refs(value):
                if ref not in names:
                    raise SweepError(
                        f"point {point.name!r}: overrides.{key}: {{point_dir:{ref}}} names "
                        "no point of this sweep"
                    )
    order(sweep)


def order(sweep: Sweep) -> list[Point]:
    """The points, each after those it needs, otherwise in file order."""
    by_name = {p.name: p for p in sweep.points}
    ordered: list[Point] = []
    state: dict[str, str] = {}

    def visit(point: Point, path: tuple[str, ...]) -> None:
        if state.get(point.name) == "placed":
            return
        if state.get(point.name) == "visiting":
            cycle = " -> ".join((*path[path.index(point.name) :], point.name))
            raise SweepError(f"point {point.name!r}: after: dependency cycle {cycle}")
        state[point.name] = "visiting"
        for dep in point.after:
            visit(by_name[dep], (*path, point.name))
        state[point.name] = "placed"
        ordered.append(point)

    for point in sweep.points:
        visit(point, ())
    return ordered


def _template_refs(value: Any) -> list[str]:
    texts = value if isinstance(value, list | tuple) else [value]
    matches = [m for t in texts if isinstance(t, str) for m in _TEMPLATE.finditer(t)]
    return [m.group(2) for m in matches if m.group(2) is not None]


def join(root: str, name: str) -> str:
    """`root/name`; `root` may be a URL (gs://...), so no os.path."""
    return f"{root.rstrip('/')}/{name}"


def point_dir(root: str, point: Point) -> str:
    return join(root, point.name)


def resolve(value: Any, root: str) -> Any:
    """`value` with `{root}` and `{point_dir:NAME}` replaced (inside strings and sequences)."""
    if isinstance(value, list | tuple):
        return tuple(resolve(v, root) for v in value)
    if not isinstance(value, str):
        return value
    return _TEMPLATE.sub(lambda m: root if m.group(2) is None else join(root, m.group(2)), value)


def load_config(spec: str) -> ml_collections.ConfigDict:
    """An experiment config as `python -m audiolm_pt.main --config=spec` builds it."""
    path, sep, arg = spec.partition(":")
    module = import_file(path)
    return module.get_config(arg) if sep else module.get_config()


def check(sweep: Sweep, root: str) -> None:
    """Loads every point's config and applies its overrides (the pipeline section is then
    validated too); checks evaluator names, their options and the evaluation's flags."""
    configs: dict[str, ml_collections.ConfigDict] = {}
    for point in sweep.points:
        label = f"point {point.name!r}"
        if point.config not in configs:
            try:
                configs[point.config] = load_config(point.config)
            except Exception as err:
                raise SweepError(f"{label}: config {point.config}: {err}") from err
        _check_overrides(point, copy.deepcopy(configs[point.config]), root, label)
        _check_evaluation(point, label)


def _check_overrides(point: Point, config: ml_collections.ConfigDict, root: str, label: str):
    from audiolm_pt import experiment

    for key, value in point.overrides.items():
        _override(config, key, resolve(value, root), f"{label}: overrides.{key}")
    try:
        experiment.parse(config)
    except (TypeError, ValueError, FileNotFoundError) as err:
        raise SweepError(f"{label}: {err}") from err


def _check_evaluation(point: Point, label: str) -> None:
    from audiolm_pt import evaluate  # noqa: F401  (importing registers the evaluators)
    from audiolm_pt.evaluate import registry
    from audiolm_pt.evaluate.__main__ import parse_args

    for name in point.evals:
        if name not in registry.names():
            raise SweepError(f"{label}: evals: unknown evaluator {name!r}")
    for name, options in point.eval_options.items():
        if name not in point.evals:
            raise SweepError(f"{label}: eval_options.{name}: evaluator not in evals")
        accepted = set(inspect.signature(registry.get(name)).parameters) - {"context"}
        for option in options:
            if option not in accepted:
                raise SweepError(
                    f"{label}: eval_options.{name}.{option}: unknown option; "
                    f"known: {sorted(accepted)}"
                )
    for flag, value in point.eval_flags.items():
        if flag in ("workdir", "evals", "options"):
            raise SweepError(f"{label}: eval_flags.{flag}: set by the sweep from the point")
        usage = io.StringIO()
        try:
            with contextlib.redirect_stderr(usage):
                parse_args(["--workdir=.", f"--{flag}={value}"])
        except SystemExit:
            why = usage.getvalue().strip().splitlines()[-1]
            raise SweepError(f"{label}: eval_flags.{flag}: {why}") from None


def _override(config: ml_collections.ConfigDict, key: str, value: Any, label: str) -> None:
    node = config
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise SweepError(f"{label}: the config has no key {part!r} there")
        parent, node = node, node[part]
    try:
        parent[part] = value
    except (TypeError, ValueError) as err:
        raise SweepError(f"{label}: {err}") from err
