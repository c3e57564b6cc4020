"""Memory per device of the compiled train step under data-parallel, FSDP and FSDP+tensor
meshes on 1, 2, 4 and 8 devices, with and without remat; and the contrastive loss's memory as
the global batch grows at a fixed per-device batch, sharded against unsharded logits.

    python benchmarks/memory.py                       # hybrid:small, about 20 compiles
    python benchmarks/memory.py --config=contrastive:base --remat=none,full,save_dots

Each device count runs in its own process with XLA_FLAGS=--xla_force_host_platform_device_count
=N (simulated CPU devices: compiled memory plans, nothing is executed). Per device:
- parameter / optimizer-state bytes from the state's shardings (what each device holds);
- argument, output, aliased (donated) and temp bytes from the compiled step's
  `memory_analysis()`; temp is activations plus XLA's temporaries;
- for FSDP, parameters + optimizer state against total / N (target: within 15%).
The global batch is `--per_device_batch` x N, split over the data and fsdp axes (under
fsdp+tensor the tensor pairs share examples, so each device sees twice as many).

The loss section compiles value-and-grad of the InfoNCE loss alone on n = 1, 2, 4, 8 of the
devices, global batch n x b: `sharded` ([b, B] logits per device), `sharded_chunked` (one
[b, b] block at a time) and `unsharded` (embeddings gathered to every device, full [B, B]
logits), and fits temp bytes ~ B^slope.
"""

import argparse
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import common
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from audiolm_pt import losses, sharding

MESHES = ("dp", "fsdp", "fsdp_tensor")
LOSS_VARIANTS = ("sharded", "sharded_chunked", "unsharded")
COUNT_FLAG = "--xla_force_host_platform_device_count"
# The default sharding rules' batch axes, which the loss splits the batch over.
AXES = sharding.batch_rule_axes(sharding.ShardingConfig())


def mesh_values(mesh: str, devices: int) -> dict[str, int]:
    """Sharding-config factors of a named mesh on `devices` devices."""
    if mesh == "dp":
        return {"ici_data": -1, "ici_fsdp": 1, "ici_tensor": 1}
    if mesh == "fsdp":
        return {"ici_data": 1, "ici_fsdp": -1, "ici_tensor": 1}
    if mesh == "fsdp_tensor":
        return {"ici_data": 1, "ici_fsdp": -1, "ici_tensor": min(2, devices)}
    raise ValueError(f"--meshes: unknown mesh {mesh!r}; known: {MESHES}")


def _bytes_per_device(abstract: Any, shardings: Any) -> tuple[int, int]:
    """(bytes on one device, bytes of the whole tree) of arrays placed by `shardings`."""
    leaves = jax.tree.leaves(abstract)
    specs = jax.tree.leaves(shardings)
    local = total = 0
    for leaf, s in zip(leaves, specs, strict=True):
        itemsize = np.dtype(leaf.dtype).itemsize
        local += math.prod(s.shard_shape(leaf.shape)) * itemsize
        total += math.prod(leaf.shape) * itemsize
    return local, total


def state_bytes(trainer: Any) -> dict[str, int]:
    """Per-device and total bytes of the parameters, optimizer state and the rest."""
    out = {}
    for key, name in (("params", "params"), ("opt_state", "opt_state")):
        local, total = _bytes_per_device(trainer.abstract[key], trainer.shardings[key])
        out[f"{name}_bytes_per_device"], out[f"{name}_bytes_total"] = local, total
    rest = {k: v for k, v in trainer.abstract.items() if k not in ("params", "opt_state")}
    rest_sh = {k: v for k, v in trainer.shardings.items() if k not in ("params", "opt_state")}
    out["other_state_bytes_per_device"] = _bytes_per_device(rest, rest_sh)[0]
    return out


def abstract_batch(case: common.Case, batch_sharding: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes and dtypes of one global synthetic batch, placed by `batch_sharding`."""
    batch_size, frames, tokens = case.shape
    from audiolm_pt.train.synthetic_batch import synthetic_batch

    one = synthetic_batch(case.model, 1, frames, tokens, seed=0, index=0)
    return {
        k: jax.ShapeDtypeStruct((batch_size, *v.shape[1:]), v.dtype, sharding=batch_sharding)
        for k, v in one.items()
    }


def step_memory(
    spec: str, devices: list, mesh: str, remat: str, per_device_batch: int, frames: int, tokens: int
) -> dict[str, Any]:
    """One (mesh, remat) row: state bytes from shardings, the compiled step's plan."""
    n = len(devices)
    case = common.make_case(spec, per_device_batch * n, frames, tokens, remat=remat)
    trainer = common.trainer_for(case, devices, mesh_values(mesh, n))
    compiled = trainer.step.lower(
        trainer.abstract, abstract_batch(case, trainer.batch_sharding)
    ).compile()
    m = compiled.memory_analysis()
    row = {
        "devices": n,
        "mesh": mesh,
        "mesh_shape": dict(trainer.mesh.shape),
        "remat": remat,
        "global_batch": case.shape[0],
        **state_bytes(trainer),
        "argument_bytes": m.argument_size_in_bytes,
        "output_bytes": m.output_size_in_bytes,
        "alias_bytes": m.alias_size_in_bytes,
        "temp_bytes": m.temp_size_in_bytes,
        "generated_code_bytes": m.generated_code_size_in_bytes,
    }
    row["peak_bytes_estimate"] = (
        row["argument_bytes"] + row["output_bytes"] - row["alias_bytes"] + row["temp_bytes"]
    )
    held = row["params_bytes_per_device"] + row["opt_state_bytes_per_device"]
    total = row["params_bytes_total"] + row["opt_state_bytes_total"]
    row["params_opt_over_total_per_n"] = held / (total / n)
    return row


def loss_memory(
    devices: list, counts: tuple[int, ...], per_device_batch: int, dim: int
) -> dict[str, Any]:
    """Temp bytes per device of the InfoNCE loss's value and gradient as the global batch
    grows with the device count, for each variant, and the fitted growth exponents."""
    # The unsharded variant computes the global logits on purpose; the loss warns about it.
    logging.getLogger(losses.__name__).setLevel(logging.ERROR)
    scale = 1.0 / 0.07
    points = []
    for n in counts:
        mesh = sharding.make_mesh(sharding.ShardingConfig(), devices[:n])
        size = n * per_device_batch
        split = NamedSharding(mesh, PartitionSpec("data" if n > 1 else None))
        everywhere = NamedSharding(mesh, PartitionSpec())
        for variant in LOSS_VARIANTS:
            placed = everywhere if variant == "unsharded" else split
            loss_mesh = None if variant == "unsharded" else mesh
            chunked = variant == "sharded_chunked"

            def loss(a, t, loss_mesh=loss_mesh, chunked=chunked):
                return losses.contrastive_loss(
                    a, t, scale, mesh=loss_mesh, batch_axes=AXES, chunked=chunked
                )[0]

            emb = jax.ShapeDtypeStruct((size, dim), jnp.float32, sharding=placed)
            fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
            m = fn.lower(emb, emb).compile().memory_analysis()
            local = size if variant == "unsharded" else per_device_batch
            block = per_device_batch if chunked else size
            points.append(
                {
                    "variant": variant,
                    "devices": n,
                    "global_batch": size,
                    "temp_bytes": m.temp_size_in_bytes,
                    "argument_bytes": m.argument_size_in_bytes,
                    "logits_bytes": local * block * 4,
                }
            )
    fits = {}
    for variant in LOSS_VARIANTS:
        mine = [p for p in points if p["variant"] == variant]
        if len(mine) < 2:  # e.g. --device_counts=8: one batch size, no growth to fit
            continue
        fit = common.fit_loglog([p["global_batch"] for p in mine], [p["temp_bytes"] for p in mine])
        fit["growth"] = growth(fit["slope"])
        fits[variant] = fit
    return {"per_device_batch": per_device_batch, "dim": dim, "points": points, "fits": fits}


def growth(slope: float) -> str:
    """Words for a fitted memory growth exponent."""
    if slope < 1.3:
        return "linear or slower"
    if slope > 1.7:
        return "quadratic"
    return "between linear and quadratic"


def worker(args: Any) -> dict[str, Any]:
    """All rows for this process's device count (`--worker`), plus the loss section when
    this is the largest count."""
    devices = jax.devices()
    if len(devices) != args.worker:
        raise SystemExit(f"worker expected {args.worker} devices, jax has {len(devices)}")
    # Meshes that resolve to the same shape (all of them on one device) compile once.
    rows, seen = [], {}
    for remat in args.remat.split(","):
        for mesh in args.meshes.split(","):
            shape_key = (remat, _mesh_shape(mesh, devices))
            if shape_key in seen:
                rows.append({**seen[shape_key], "mesh": mesh, "same_as": seen[shape_key]["mesh"]})
                continue
            row = step_memory(
                args.config, devices, mesh, remat, args.per_device_batch, args.frames, args.tokens
            )
            seen[shape_key] = row
            rows.append(row)
            print(
                json.dumps({k: row[k] for k in ("devices", "mesh", "remat", "temp_bytes")}),
                flush=True,
            )
    out = {"rows": rows}
    if len(devices) == max(common.parse_ints(args.device_counts)):
        counts = tuple(n for n in common.parse_ints(args.device_counts) if n <= len(devices))
        dim = args.loss_dim or common.make_case(args.config, 1, 1, 1).model.heads.joint_dim
        out["loss"] = loss_memory(devices, counts, args.loss_per_device_batch, dim)
    return out


def _mesh_shape(mesh: str, devices: list) -> tuple[int, ...]:
    values = mesh_values(mesh, len(devices))
    built = sharding.make_mesh(sharding.ShardingConfig(**values), devices)
    return tuple(built.shape[a] for a in sharding.MESH_AXES)


def run_worker(count: int, argv: list[str]) -> dict[str, Any]:
    """Runs this script for `count` simulated devices in a fresh process (its output shows
    as it goes)."""
    flags = re.sub(rf"{COUNT_FLAG}=\S+", "", os.environ.get("XLA_FLAGS", "")).strip()
    env = {**os.environ, "XLA_FLAGS": f"{flags} {COUNT_FLAG}={count}".strip()}
    env["JAX_PLATFORMS"] = "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "worker.json")
        cmd = [sys.executable, __file__, *argv, f"--worker={count}", f"--worker_out={out}"]
        code = subprocess.run(cmd, env=env, check=False).returncode
        if code:
            return {"error": f"worker for {count} devices exited {code} (its output is above)"}
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FSDP rows against the target: parameters + optimizer state within 15% of total / N."""
    return [
        {
            "devices": r["devices"],
            "remat": r["remat"],
            "params_opt_over_total_per_n": r["params_opt_over_total_per_n"],
            "within_15_percent": r["params_opt_over_total_per_n"] <= 1.15,
        }
        for r in rows
        if r["mesh"] == "fsdp"
    ]


def _mb(x: float) -> str:
    return f"{x / 2**20:.2f}"


STEP_COLUMNS = (
    ("devices", "N", "d"),
    ("mesh", "mesh", "s"),
    ("remat", "remat", "s"),
    ("global_batch", "batch", "d"),
    ("params_bytes_per_device", "params MiB", _mb),
    ("opt_state_bytes_per_device", "opt MiB", _mb),
    ("params_opt_over_total_per_n", "(p+o)/(total/N)", ".3f"),
    ("argument_bytes", "args MiB", _mb),
    ("temp_bytes", "temp MiB", _mb),
    ("peak_bytes_estimate", "peak MiB", _mb),
)
LOSS_COLUMNS = (
    ("variant", "variant", "s"),
    ("devices", "N", "d"),
    ("global_batch", "B", "d"),
    ("logits_bytes", "logits MiB", _mb),
    ("temp_bytes", "temp MiB", _mb),
)


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], "memory")
    p.add_argument("--config", default="hybrid:small")
    p.add_argument("--device_counts", default="1,2,4,8")
    p.add_argument("--meshes", default=",".join(MESHES))
    p.add_argument("--remat", default="none,full", help="remat policies: none, full, save_dots")
    p.add_argument("--per_device_batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--loss_per_device_batch", type=int, default=256)
    p.add_argument("--loss_dim", type=int, default=0, help="embedding size (default: config's)")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker_out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.smoke:
        args.config, args.device_counts = "hybrid:tiny", "1,2"
        args.meshes, args.remat = "dp,fsdp", "none"
        args.frames, args.tokens = 64, 8
        args.loss_per_device_batch, args.loss_dim = 16, 32
    if args.worker:
        with open(args.worker_out, "w", encoding="utf-8") as f:
            json.dump(worker(args), f)
        return
    for mesh in args.meshes.split(","):
        mesh_values(mesh, 1)
    meta = common.run_metadata()
    argv = [a for a in sys.argv[1:] if not a.startswith("--out")]
    rows, loss, errors = [], None, []
    for count in common.parse_ints(args.device_counts):
        result = run_worker(count, argv)
        if "error" in result:
            print(result["error"], file=sys.stderr)
            errors.append(result["error"])
            continue
        rows.extend(result["rows"])
        loss = result.get("loss", loss)
        common.print_table(result["rows"], STEP_COLUMNS)
    print()
    common.print_table(rows, STEP_COLUMNS)
    fsdp = summary(rows)
    if loss:
        print()
        common.print_table(loss["points"], LOSS_COLUMNS)
        for variant, fit in loss["fits"].items():
            slope, r2 = fit["slope"], fit["r2"]
            print(f"{variant}: temp bytes ~ B^{slope:.2f} (r2 {r2:.3f}), {fit['growth']}")
    body = {"settings": vars(args), "rows": rows, "fsdp": fsdp, "loss": loss, "errors": errors}
    common.write_report(args.out, meta, body)


if __name__ == "__main__":
    main()
