"""Device mesh, logical->mesh axis rules, and the shardings derived from them.

Owns the `data` x `fsdp` x `tensor` mesh (ICI and DCN factors, `-1` fills the rest), the rule
table that maps the models' logical axis names onto mesh axes, the parameter / optimizer-state /
batch shardings that follow from it, a guard against large parameters left replicated, and the
mixed-precision cast helpers.

The mesh axes are created as `AxisType.Auto` on purpose. The models annotate parameters only
(logical names on each `nnx.Variable`) and write plain matmuls; under FSDP the contracting
dimension of most matmuls is sharded, which `Explicit` axes reject unless every op names its
output sharding. `Auto` lets XLA's sharding propagation insert the all-gathers and
reduce-scatters, and the losses that need exact control over communication run under
`jax.shard_map`, which works on an `Auto` mesh.
"""

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
BATCH = "batch"
MeshAxes = str | tuple[str, ...] | None
Rules = tuple[tuple[str, MeshAxes], ...]

DEFAULT_RULES: Rules = (
    (BATCH, ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("joint", "fsdp"),
    ("labels", None),
    ("layers", None),
    ("conv_in", None),
    ("conv_out", None),
)


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    """Mesh shape and the logical->mesh rule table.

    `ici_*` factors split the devices of one slice, `dcn_*` factors split the slices; one
    factor of each group may be -1 to take what the others leave. A parameter with more than
    `max_replicated_size` elements must not end up fully replicated when fsdp or tensor > 1.
    """

    ici_data: int = -1
    ici_fsdp: int = 1
    ici_tensor: int = 1
    dcn_data: int = -1
    dcn_fsdp: int = 1
    dcn_tensor: int = 1
    rules: Rules = DEFAULT_RULES
    max_replicated_size: int = 1_000_000

    def __post_init__(self):
        for group in ("ici", "dcn"):
            factors = self.factors(group)
            fills = [f"{group}_{a}" for a, f in zip(MESH_AXES, factors, strict=True) if f == -1]
            if len(fills) > 1:
                raise ValueError(f"only one of {fills} may be -1")
            for axis, f in zip(MESH_AXES, factors, strict=True):
                if f == 0 or f < -1:
                    raise ValueError(f"{group}_{axis}={f}: expected a positive factor or -1")
        names = [name for name, _ in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rules: a logical axis appears twice in {names}")
        if BATCH not in names:
            raise ValueError(f"rules: no entry for {BATCH!r}")
        for name, axes in self.rules:
            for axis in _as_tuple(axes):
                if axis not in MESH_AXES:
                    raise ValueError(f"rules[{name!r}]: unknown mesh axis {axis!r}")

    def factors(self, group: str) -> tuple[int, ...]:
        return tuple(getattr(self, f"{group}_{axis}") for axis in MESH_AXES)


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
    if axes is None:
        return ()
    return (axes,) if isinstance(axes, str) else tuple(axes)


def _fill(factors: tuple[int, ...], total: int, group: str) -> tuple[int, ...]:
    known = math.prod(f for f in factors if f != -1)
    if -1 in factors:
        if total % known:
            raise ValueError(f"{group}_* factors {factors}: {known} does not divide {total}")
        return tuple(total // known if f == -1 else f for f in factors)
    if known != total:
        raise ValueError(
            f"{group}_* factors {dict(zip(MESH_AXES, factors, strict=True))} multiply to "
            f"{known}, but there are {total} {'devices per slice' if group == 'ici' else 'slices'}"
        )
    return factors


def make_mesh(cfg: ShardingConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The (data, fsdp, tensor) mesh over `devices` (default: all), hybrid across slices."""
    devices = list(jax.devices() if devices is None else devices)
    num_slices = len({getattr(d, "slice_index", 0) for d in devices})
    if len(devices) % num_slices:
        raise ValueError(f"{len(devices)} devices do not split evenly into {num_slices} slices")
    ici = _fill(cfg.factors("ici"), len(devices) // num_slices, "ici")
    dcn = _fill(cfg.factors("dcn"), num_slices, "dcn")
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if num_slices > 1:
        grid = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices)
        return Mesh(grid, MESH_AXES, axis_types=axis_types)
    return jax.make_mesh(ici, MESH_AXES, axis_types=axis_types, devices=devices)


def batch_rule_axes(cfg: ShardingConfig) -> tuple[str, ...]:
    """The mesh axes the `batch` rule names (whatever their sizes)."""
    return _as_tuple(dict(cfg.rules)[BATCH])


def batch_axes(cfg: ShardingConfig, mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes the batch dimension is split over (those of size > 1 only)."""
    return tuple(a for a in _as_tuple(dict(cfg.rules)[BATCH]) if mesh.shape[a] > 1)


def logical_to_spec(
    names: Sequence[str | None], shape: Sequence[int], rules: Rules, mesh: Mesh, *, what: str = ""
) -> PartitionSpec:
    """The PartitionSpec for an array of `shape` whose dimensions carry logical `names`.

    A mesh axis that does not divide its dimension, or that an earlier dimension already
    uses, is dropped (with a logged note) so the array is replicated along it instead.
    """
    table = dict(rules)
    if len(names) != len(shape):
        raise ValueError(f"{what}: {len(names)} logical names {tuple(names)} for shape {shape}")
    used: set[str] = set()
    spec = []
    for name, dim in zip(names, shape, strict=True):
        if name is not None and name not in table:
            raise ValueError(f"{what}: logical axis {name!r} has no entry in the sharding rules")
        kept: list[str] = []
        for axis in _as_tuple(table.get(name)) if name is not None else ():
            size = mesh.shape[axis]
            if size == 1:
                continue
            if axis in used or dim % (math.prod(mesh.shape[a] for a in kept) * size):
                log.info("%s: not sharding %s (size %d) over %s (%d)", what, name, dim, axis, size)
                continue
            kept.append(axis)
            used.add(axis)
        spec.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return PartitionSpec(*spec)


def _path_str(path) -> str:
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    # A Variable's array sits under a trailing `.value` that names nothing in the model.
    return "/".join(parts[:-1] if parts and parts[-1] == "value" else parts)


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def tree_shardings(tree: Any, mesh: Mesh, rules: Rules) -> Any:
    """NamedShardings for every array in `tree` (parameters, optimizer state, a train state).

    A `nnx.Variable` with logical names (`out_sharding` metadata) is sharded by the rules;
    optax keeps those Variables inside its moment trees, so optimizer state mirrors its
    parameter's sharding. Everything else (step counters, scalars, plain arrays) is replicated.
    Leaves of the result keep the Variable wrappers, so it matches `tree` for `jax.jit`.
    """

    def one(path, leaf):
        if _is_variable(leaf):
            names = leaf.get_metadata().get("out_sharding")
            value = leaf.get_value()
            if isinstance(value, optax.MaskedNode):
                return leaf  # a frozen parameter's moments: an empty placeholder, no array
            if names and np.ndim(value):
                spec = logical_to_spec(names, np.shape(value), rules, mesh, what=_path_str(path))
                return leaf.replace(NamedSharding(mesh, spec))
            return leaf.replace(NamedSharding(mesh, PartitionSpec()))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree_util.tree_map_with_path(one, tree, is_leaf=_is_variable)


def batch_sharding(cfg: ShardingConfig, mesh: Mesh) -> NamedSharding:
    """Sharding for every batch array: leading (example) axis over the batch mesh axes."""
    axes = batch_axes(cfg, mesh)
    return NamedSharding(mesh, PartitionSpec(axes or None))


def check_large_params_sharded(tree: Any, shardings: Any, mesh: Mesh, max_size: int) -> None:
    """Refuses a layout in which a large array stayed fully replicated on a model-parallel mesh.

    Raises ValueError naming the first offending path when fsdp * tensor > 1 and an array with
    more than `max_size` elements has a fully replicated sharding.
    """
    if mesh.shape["fsdp"] * mesh.shape["tensor"] == 1:
        return
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    specs = jax.tree_util.tree_leaves(shardings)
    for (path, leaf), sharding in zip(leaves, specs, strict=True):
        if np.size(leaf) > max_size and sharding.is_fully_replicated:
            raise ValueError(
                f"parameter {_path_str(path)} ({np.size(leaf):,} elements, shape "
                f"{np.shape(leaf)}) is fully replicated on mesh {dict(mesh.shape)}; "
                "check its logical axis names and the sharding rules"
            )
