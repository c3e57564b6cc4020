"""Step time as batch size and sequence length grow, one dimension at a time from a base
shape, with the log-log slope of each sweep next to the slope the analytic FLOPs predict.

    python benchmarks/scaling.py          # demo contrastive (width 64 and 256) and small
    python benchmarks/scaling.py --configs=hybrid:small --batch=8,16,32

A slope of 1 is linear growth. Batch should be linear (below 1 while fixed per-step costs are
still being amortised); frames and tokens grow faster than linear only as far as attention's
n^2 terms weigh in the FLOPs. `time_slope - flops_slope` is what the hardware adds: above 0
the step gets less efficient as the dimension grows (memory-bound attention, cache spills),
below 0 more efficient (better-shaped matmuls, overheads amortised).

Each shape is timed on one device with the batch on device, each step waited for; the model
is built once per config, its position tables sized for the longest sweep.
"""

import statistics
import time
import traceback
from typing import Any

import common
import jax

from audiolm_pt.train import mfu
from audiolm_pt.train.synthetic_batch import synthetic_batch

CONFIGS = ("demo:contrastive", "demo:contrastive,wide", "contrastive:small")
BASE = (16, 500, 32)
SWEEPS = {"batch": (8, 16, 32, 64), "frames": (250, 500, 1000), "tokens": (16, 32, 64)}
DIMS = ("batch", "frames", "tokens")


def sweep_shapes(base: tuple[int, int, int], sweeps: dict[str, tuple[int, ...]]) -> list:
    """Distinct (batch, frames, tokens) shapes: `base` with one dimension swept at a time."""
    shapes = []
    for i, dim in enumerate(DIMS):
        for value in sweeps[dim]:
            shape = list(base)
            shape[i] = value
            if tuple(shape) not in shapes:
                shapes.append(tuple(shape))
    return shapes


def verdict(time_slope: float, flops_slope: float, tolerance: float = 0.15) -> str:
    """Words for a sweep's slopes: the growth, and whether the FLOPs account for it."""
    if time_slope < 1 - tolerance:
        grows = "sub-linear"
    elif time_slope > 1 + tolerance:
        grows = "super-linear"
    else:
        grows = "linear"
    gap = time_slope - flops_slope
    if abs(gap) <= tolerance:
        return f"{grows}, as the FLOPs predict"
    return f"{grows}, {'steeper' if gap > 0 else 'flatter'} than the FLOPs ({flops_slope:.2f})"


def fit_sweeps(
    points: list[dict[str, Any]], base: tuple[int, int, int], sweeps: dict[str, tuple[int, ...]]
) -> dict[str, Any]:
    """Per swept dimension: the points on that sweep and the time and FLOPs slopes."""
    fits = {}
    for i, dim in enumerate(DIMS):
        others = [j for j in range(3) if j != i]
        mine = sorted(
            (
                p
                for p in points
                if p["shape"][i] in sweeps[dim] and all(p["shape"][j] == base[j] for j in others)
            ),
            key=lambda p, i=i: p["shape"][i],
        )
        if len(mine) < 2:
            continue
        xs = [p["shape"][i] for p in mine]
        time_fit = common.fit_loglog(xs, [p["step_s"] for p in mine])
        flops_fit = common.fit_loglog(xs, [p["flops"] for p in mine])
        fits[dim] = {
            "values": xs,
            "step_s": [p["step_s"] for p in mine],
            "time_slope": time_fit["slope"],
            "time_r2": time_fit["r2"],
            "flops_slope": flops_fit["slope"],
            "verdict": verdict(time_fit["slope"], flops_fit["slope"]),
        }
    return fits


def measure_config(
    spec: str, base: tuple[int, int, int], sweeps: dict, steps: int, warmup: int, device: Any
) -> dict[str, Any]:
    shapes = sweep_shapes(base, sweeps)
    largest = tuple(max(s[i] for s in shapes) for i in range(3))
    case = common.make_case(spec, *largest)
    trainer = common.trainer_for(case, [device])
    state = trainer.init()
    points = []
    for shape in shapes:
        host = synthetic_batch(case.model, *shape, seed=0, index=0)
        batch = jax.device_put(host, trainer.batch_sharding)
        start = time.perf_counter()
        state, _, _ = common.time_blocked(trainer.step, state, batch, 1)
        first = time.perf_counter() - start
        state, _, _ = common.time_blocked(trainer.step, state, batch, warmup)
        state, _, times = common.time_blocked(trainer.step, state, batch, steps)
        step_s = statistics.median(times)
        flops = mfu.train_step_flops(case.model, *shape)
        point = {
            "shape": list(shape),
            "step_s": step_s,
            "step_s_all": times,
            "first_call_s": first,
            "flops": flops,
            "gflops_per_s": flops / step_s / 1e9,
        }
        points.append(point)
        print(f"{spec} {shape}: {step_s * 1e3:.1f} ms, {point['gflops_per_s']:.1f} GFLOP/s")
    return {
        "config": spec,
        "base": list(base),
        "points": points,
        "fits": fit_sweeps(points, base, sweeps),
    }


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], "scaling")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--base", default=",".join(map(str, BASE)), help="batch,frames,tokens")
    for dim in DIMS:
        p.add_argument(f"--{dim}", default=",".join(map(str, SWEEPS[dim])))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after the compiling one")
    args = p.parse_args()
    if args.smoke:
        args.configs, args.base = "demo:contrastive,tiny", "4,64,8"
        args.batch, args.frames, args.tokens = "2,4", "32,64", "8,16"
        args.steps, args.warmup = 2, 0
    base = common.parse_ints(args.base)
    if len(base) != 3:
        raise SystemExit(f"--base={args.base}: expected batch,frames,tokens")
    sweeps = {dim: common.parse_ints(getattr(args, dim)) for dim in DIMS}
    meta = common.run_metadata()
    results, failed = [], []
    for spec in common.split_specs(args.configs):
        try:
            results.append(
                measure_config(spec, base, sweeps, args.steps, args.warmup, jax.devices()[0])
            )
        except Exception as e:  # one failing config must not end the run
            traceback.print_exc()
            failed.append({"config": spec, "error": f"{type(e).__name__}: {e}"})
    rows = [
        {"config": r["config"], "dim": dim, **fit}
        for r in results
        for dim, fit in r["fits"].items()
    ]
    print()
    common.print_table(
        rows,
        (
            ("config", "config", "s"),
            ("dim", "sweep", "s"),
            ("values", "values", lambda v: ",".join(map(str, v))),
            ("step_s", "step ms", lambda v: ",".join(f"{x * 1e3:.0f}" for x in v)),
            ("time_slope", "time slope", ".2f"),
            ("flops_slope", "FLOPs slope", ".2f"),
            ("time_r2", "r2", ".3f"),
            ("verdict", "verdict", "s"),
        ),
    )
    body = {"settings": vars(args), "configs": results, "failed": failed}
    common.write_report(args.out, meta, body)


if __name__ == "__main__":
    main()
