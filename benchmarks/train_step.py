"""Train-step efficiency against the hardware: per config, steps/s, examples/s, analytic FLOPs
per step, achieved TFLOP/s and MFU, against the best square matmul measured in the compute
dtype on the same devices (before each config and at the end; the best of all is used) and
the vendor table on GPU/TPU, with the step time split into device compute, host overhead and
data wait.

    python benchmarks/train_step.py                     # CPU: demo and small configs, 1 device
    python benchmarks/train_step.py --data_dir=/tmp/demo_run/tfds   # + the real pipeline
    python benchmarks/train_step.py --configs=hybrid:base --batch=128   # pick configs/shape

Defaults: on CPU demo:{contrastive,captioning,hybrid} and demo:contrastive,wide (width 256)
at their own shape (32 x 500 frames x 32 tokens) and {contrastive,captioning,hybrid}:small at
16 x 1000 x 32 in float32 on one device (XLA's CPU client spreads one device's matmuls over
all cores); on GPU/TPU the base configs at their batch (halved until it fits) in bfloat16
on every device.

What each timing means:
- device: steady-state steps with the batch already on device, each waited for; the step's
  own efficiency (fusion, layouts, attention);
- paired: rounds of (sustained matmul rate, device steps, rate again); each round's MFU is
  against the rates taken just before and after it, which cancels the drift of a shared
  machine's speed (this one's sustained matmul rate wanders by about 10% over seconds);
- dispatch: time until the jitted call returns, host overhead paid every step;
- loop: what `audiolm_pt.train.loop` does per step, with host batches ready in memory:
  transfer to device, dispatch, read the previous step's metrics. Headline steps/s,
  examples/s and MFU come from it (synthetic batches: the pipeline is out of the picture);
- pipeline (with --data_dir): the same loop fed by the Grain pipeline of configs/demo.py
  through `audiolm_pt.main.make_iterator` and `to_global`; data_wait is the time blocked in
  next(). End-to-end examples/s and MFU come from it.
`mfu_budget` splits the measured peak into what was achieved end to end (the pipeline loop,
or the synthetic loop without --data_dir) and what was lost in the step, to host overhead and
to data wait (they add up to 1). The machine's load average at start and end is in `meta`.
"""

import functools
import itertools
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import common
import jax
import numpy as np

from audiolm_pt.train import mfu

CPU_CONFIGS = (
    "demo:contrastive",
    "demo:contrastive,wide",
    "demo:captioning",
    "demo:hybrid",
    "contrastive:small",
    "captioning:small",
    "hybrid:small",
)
ACCELERATOR_CONFIGS = ("contrastive:base", "captioning:base", "hybrid:base")
CPU_SHAPE = (16, 1000, 32)  # batch, frames, tokens of non-demo configs on CPU
SMOKE_SHAPE = (4, 64, 8)
PEAK_SIZES = {"cpu": (1024, 2048, 3072), "accelerator": (4096, 8192, 16384)}


def default_shape(spec: str, on_cpu: bool) -> tuple[int, int, int]:
    """Demo configs keep their own shape; others use CPU_SHAPE on CPU, their own elsewhere."""
    if spec.startswith("demo") or not on_cpu:
        p = common.load_config(spec).data.pipeline
        return p.global_batch_size, p.max_frames, p.max_text_len
    return CPU_SHAPE


def host_loop(
    step: Callable, state: Any, batches: Iterator, to_device: Callable, steps: int, warmup: int
) -> tuple[Any, dict[str, float]]:
    """`train.loop`'s per-step host work: next(batches), transfer, dispatch, then read the
    previous step's metrics (which waits for it). Mean seconds per timed step of each part,
    and `step_s`, the wall time per step from an idle device to the last step's end."""
    parts = {"data_wait_s": [], "transfer_s": [], "dispatch_s": [], "metrics_wait_s": []}
    pending = None
    start = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            # Drain the queue first: the last warmup step would otherwise run inside the
            # timed window, adding one step to `steps`.
            jax.block_until_ready((state, pending))
            parts = {k: [] for k in parts}
            start = time.perf_counter()
        t0 = time.perf_counter()
        host = next(batches)
        t1 = time.perf_counter()
        batch = to_device(host)
        t2 = time.perf_counter()
        state, metrics = step(state, batch)
        t3 = time.perf_counter()
        if pending is not None:
            int(pending["consecutive_nonfinite"])
        t4 = time.perf_counter()
        pending = metrics
        for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key].append(seconds)
    jax.block_until_ready((state, pending))
    out = {k: statistics.fmean(v) for k, v in parts.items()}
    out["step_s"] = (time.perf_counter() - start) / steps
    return state, out


def utilisation(flops: float, seconds: float, devices: int, peaks: dict) -> dict[str, float]:
    """TFLOP/s per device and MFU against the measured and (where known) table peaks."""
    out = mfu.utilisation(flops, seconds, devices, peaks["measured"])
    out["mfu_measured"] = out.pop("mfu")
    if peaks["table"]:
        out["mfu_table"] = mfu.utilisation(flops, seconds, devices, peaks["table"])["mfu"]
    return out


def add_utilisation(row: dict[str, Any], peaks: dict) -> None:
    """TFLOP/s and MFU of the loop (top level), the device step and the pipeline loop, and
    `mfu_budget`, which splits the measured peak into what was achieved end to end and what
    was lost in the step, to host overhead and to data wait."""
    flops, n = row["flops_per_step"], row["devices"]
    row.update(utilisation(flops, row["loop"]["step_s"], n, peaks))
    row["device"] = utilisation(flops, row["device_step_s"], n, peaks)
    if "pipeline" in row:
        row["pipeline"].update(utilisation(flops, row["pipeline"]["step_s"], n, peaks))
    end = row.get("pipeline", row)["mfu_measured"]
    row["mfu_budget"] = {
        "achieved": end,
        "lost_in_step": 1.0 - row["device"]["mfu_measured"],
        "lost_to_host": row["device"]["mfu_measured"] - row["mfu_measured"],
        "lost_to_data": row["mfu_measured"] - end,
    }


def demo_data_config(case: common.Case, data_dir: str) -> Any:
    """The case's parsed config with the data section of configs/demo.py for its objective
    (the demo's workers, tokenizer and augmentation) reading `data_dir`, at the case's shape.
    Where the demo reads a pretrained tower's tokenizer, the case reads it too."""
    from audiolm_pt import experiment

    config = case.config.copy_and_resolve_references()
    demo = common.load_config(f"demo:{case.model.objective}")
    config.data = demo.data
    config.data.data_dir = data_dir
    p = config.data.pipeline
    p.tokenizer = p.tokenizer or demo.model.text.init_from
    p.global_batch_size, p.max_frames, p.max_text_len = case.shape
    return experiment.parse(config)


def pipeline_feed(case: common.Case, trainer: Any, data_dir: str) -> tuple[Iterator, Callable]:
    """The real pipeline and the trainer's `to_global`, exactly as `audiolm_pt.main` wires
    them."""
    from audiolm_pt import main as main_lib  # the data stack: Grain, TFDS, clu

    config = demo_data_config(case, data_dir)
    return main_lib.make_iterator(config, "train"), main_lib.make_to_global(trainer)


def between_rates(block: Callable[[], Any], devices: list, args: Any) -> tuple[Any, float]:
    """(`block()`, the mean of the sustained matmul rates at `args.pair_size` over
    `args.pair_seconds` measured just before and just after it)."""

    def rate() -> float:
        return mfu.sustained_matmul_rate(args.dtype, args.pair_size, args.pair_seconds, devices)

    before = rate()
    result = block()
    return result, (before + rate()) / 2


def paired_rounds(
    step: Callable, state: Any, batch: Any, flops: float, devices: list, args: Any
) -> tuple[Any, dict[str, Any]]:
    """`args.pairs` rounds of: the sustained matmul rate at `args.pair_size` over
    `args.pair_seconds`, `args.steps` device steps, the rate again. Each round's MFU divides
    its median step's FLOP/s by the mean of the two rates around it, so a machine whose speed
    drifts (shared hosts, thermal limits) slows numerator and denominator alike; the best
    peak of the whole run, used elsewhere, is the conservative figure."""
    rounds = []
    for _ in range(args.pairs):
        timed = functools.partial(common.time_blocked, step, state, batch, args.steps)
        (state, _, times), peak = between_rates(timed, devices, args)
        seconds = statistics.median(times)
        rounds.append(
            {"step_s": seconds, "peak": peak, "mfu": flops / seconds / len(devices) / peak}
        )
    return state, {"rounds": rounds, "mfu": statistics.median(r["mfu"] for r in rounds)}


def measure(case: common.Case, devices: list, args: Any) -> dict[str, Any]:
    """Every timing of one case (see the module docstring); `add_utilisation` turns them into
    FLOP/s and MFU once the peak is known."""
    batch_size, frames, tokens = case.shape
    n = len(devices)
    trainer = common.trainer_for(case, devices)
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(trainer.abstract["params"]))
    host = common.host_batches(case)
    state = trainer.init()

    def to_device(b):
        # What `main.make_to_global` does in one process, without importing the data stack.
        return jax.device_put(b, trainer.batch_sharding)

    batch = to_device(host[0])
    start = time.perf_counter()
    # Compiling through `lower` fills the jit cache the calls below hit, and gives the
    # compiler's own FLOP count and memory plan of the per-device program.
    compiled = trainer.step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis() or {}
    memory = compiled.memory_analysis()
    flops = mfu.train_step_flops(case.model, batch_size, frames, tokens)
    state, _, _ = common.time_blocked(trainer.step, state, batch, args.warmup)
    state, dispatch, device = common.time_blocked(trainer.step, state, batch, args.steps)
    device_s = statistics.median(device)
    state, paired = paired_rounds(trainer.step, state, batch, flops, devices, args)
    batches = itertools.cycle(host)
    state, loop = host_loop(trainer.step, state, batches, to_device, args.steps, args.warmup)
    row = {
        "config": case.spec,
        "objective": case.model.objective,
        "batch": batch_size,
        "frames": frames,
        "tokens": tokens,
        "devices": n,
        "dtype": case.model.audio.transformer.dtype,
        "remat": case.model.audio.transformer.remat,
        "params": params,
        "vocab_size": case.model.text.vocab_size,
        "flops_per_step": flops,
        "xla_flops_per_device": cost.get("flops"),
        "compile_s": compile_s,
        "temp_bytes_per_device": memory.temp_size_in_bytes if memory else None,
        "argument_bytes_per_device": memory.argument_size_in_bytes if memory else None,
        # The allocator's high-water mark so far (GPU/TPU; CPU devices keep no statistics).
        "peak_bytes_in_use": (devices[0].memory_stats() or {}).get("peak_bytes_in_use"),
        "device_step_s": device_s,
        "device_step_s_min": min(device),
        "device_step_s_all": device,
        "device_paired": paired,
        "dispatch_s": statistics.median(dispatch),
        "loop": loop,
        "steps_per_s": 1.0 / loop["step_s"],
        "examples_per_s": batch_size / loop["step_s"],
        # Seconds per step the device sat idle in the loop: host work it did not hide.
        "host_overhead_s": loop["step_s"] - device_s,
    }
    if cost.get("flops"):
        row["xla_over_analytic"] = cost["flops"] * n / flops
    if args.trace_dir:
        path = os.path.join(args.trace_dir, case.spec.replace(":", "_"))
        with jax.profiler.trace(path):
            state, _, _ = common.time_blocked(trainer.step, state, batch, 3)
        row["trace"] = path
    if args.data_dir:
        iterator, to_global = pipeline_feed(case, trainer, args.data_dir)

        def piped_loop() -> tuple[Any, dict[str, float]]:
            try:
                return host_loop(trainer.step, state, iterator, to_global, args.steps, args.warmup)
            finally:
                iterator.close()

        # The end-to-end loop's own paired figure (see `paired_rounds`).
        (state, piped), peak = between_rates(piped_loop, devices, args)
        piped["mfu_paired"] = flops / piped["step_s"] / n / peak
        piped["examples_per_s"] = batch_size / piped["step_s"]
        piped["skipped"] = dict(getattr(iterator, "skipped", {}))
        row["pipeline"] = piped
    return row


def is_out_of_memory(error: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(error) or "out of memory" in str(error).lower()


def measure_fitting(
    spec: str, shape: tuple[int, int, int], devices: list, args: Any, halve: bool
) -> dict[str, Any]:
    """`measure` at `shape`; with `halve`, out-of-memory halves the batch (not below one
    example per device) and tries again, recording the batch it started from."""
    batch, frames, tokens = shape
    while True:
        case = common.make_case(spec, batch, frames, tokens, dtype=args.dtype, remat=args.remat)
        try:
            row = measure(case, devices, args)
        except Exception as e:  # the device's own out-of-memory error type
            if not (halve and is_out_of_memory(e) and batch // 2 >= len(devices)):
                raise
            print(f"{spec}: batch {batch} does not fit, trying {batch // 2}")
            batch //= 2
            continue
        if batch != shape[0]:
            row["batch_requested"] = shape[0]
        return row


def measure_peaks(dtype: str, devices: list, sizes: tuple[int, ...], repeats: int) -> dict:
    best, by_size = mfu.best_matmul_peak(dtype, sizes, repeats, devices)
    return {"flops_per_device": best, "by_size": {str(k): v for k, v in by_size.items()}}


def best_peaks(measured: list[dict], table: float | None) -> dict:
    """The best of the peaks measured so far (load only ever lowers a measurement of the
    hardware's ceiling) and the table's."""
    return {"measured": max(m["flops_per_device"] for m in measured), "table": table}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


COLUMNS = (
    ("config", "config", "s"),
    ("shape", "BxFxT", "s"),
    ("devices", "dev", "d"),
    ("steps_per_s", "steps/s", ".3g"),
    ("examples_per_s", "ex/s", ".4g"),
    ("gflop", "GFLOP/step", ".4g"),
    ("tflops_per_device", "TFLOP/s/dev", ".4g"),
    ("mfu_measured", "MFU", _pct),
    ("mfu_table", "MFU(table)", _pct),
    ("device_step_s", "device ms", _ms),
    ("device_mfu", "MFU(device)", _pct),
    ("paired_mfu", "MFU(paired)", _pct),
    ("dispatch_s", "dispatch ms", _ms),
    ("loop_s", "loop ms", _ms),
    ("data_wait_s", "data wait ms", _ms),
    ("e2e_examples_per_s", "e2e ex/s", ".4g"),
    ("e2e_mfu", "MFU(e2e)", _pct),
    ("e2e_paired_mfu", "MFU(e2e,paired)", _pct),
)


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    if "error" in row:
        return {"config": row["config"], "shape": "error: " + row["error"].splitlines()[-1]}
    piped = row.get("pipeline", {})
    return {
        **row,
        "shape": f"{row['batch']}x{row['frames']}x{row['tokens']}",
        "gflop": row["flops_per_step"] / 1e9,
        "device_mfu": row["device"]["mfu_measured"],
        "paired_mfu": row["device_paired"]["mfu"],
        "loop_s": row["loop"]["step_s"],
        "data_wait_s": piped.get("data_wait_s"),
        "e2e_examples_per_s": piped.get("examples_per_s"),
        "e2e_mfu": piped.get("mfu_measured"),
        "e2e_paired_mfu": piped.get("mfu_paired"),
    }


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], "train_step")
    p.add_argument("--configs", default="", help="name:arg,... e.g. demo:hybrid,wide,hybrid:small")
    p.add_argument("--devices", type=int, default=0, help="use N devices (CPU default 1, else all)")
    p.add_argument("--batch", type=int, default=0, help="global batch (default: by config)")
    p.add_argument("--frames", type=int, default=0)
    p.add_argument("--tokens", type=int, default=0)
    p.add_argument("--dtype", default="", help="compute dtype (CPU float32, else bfloat16)")
    p.add_argument("--remat", default="", help="override remat: none, full, save_dots")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each")
    p.add_argument("--data_dir", default="", help="TFDS data_dir with the demo build")
    p.add_argument("--trace_dir", default="", help="write a jax.profiler trace per config")
    p.add_argument("--peak_sizes", default="", help="square matmul sizes for the peak")
    p.add_argument("--peak_repeats", type=int, default=5)
    p.add_argument("--pairs", type=int, default=3, help="rounds of peak, steps, peak")
    p.add_argument("--pair_size", type=int, default=0, help="matmul size of the paired peaks")
    p.add_argument("--pair_seconds", type=float, default=1.0, help="window of each paired peak")
    args = p.parse_args()
    common.use_cpu_devices(args.devices)
    meta = common.run_metadata()
    on_cpu = meta["platform"] == "cpu"
    if args.smoke:
        args.configs = args.configs or "demo:contrastive,tiny"
        args.batch, args.frames, args.tokens = args.batch or 4, args.frames or 64, args.tokens or 8
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
        args.peak_sizes, args.peak_repeats = args.peak_sizes or "128,256", 2
        args.pairs, args.pair_size = min(args.pairs, 2), args.pair_size or 128
        args.pair_seconds = min(args.pair_seconds, 0.05)
    default_specs = CPU_CONFIGS if on_cpu else ACCELERATOR_CONFIGS
    specs = common.split_specs(args.configs) if args.configs else default_specs
    args.dtype = args.dtype or ("float32" if on_cpu else "bfloat16")
    count = args.devices or (1 if on_cpu else jax.device_count())
    if count > jax.device_count():
        raise SystemExit(f"--devices={count}: only {jax.device_count()} devices")
    devices = jax.devices()[:count]
    sizes = common.parse_ints(args.peak_sizes) or PEAK_SIZES["cpu" if on_cpu else "accelerator"]
    try:
        table = mfu.peak_flops_per_device(meta["device_kind"], args.dtype)
    except ValueError:
        table = None
    rows, measured = [], []
    for spec in specs:
        default = default_shape(spec, on_cpu)
        shape = tuple(
            o or d for o, d in zip((args.batch, args.frames, args.tokens), default, strict=True)
        )
        measured.append(measure_peaks(args.dtype, devices, sizes, args.peak_repeats))
        by_size = measured[0]["by_size"]
        args.pair_size = args.pair_size or int(max(by_size, key=by_size.get))
        try:
            row = measure_fitting(spec, shape, devices, args, halve=not on_cpu and not args.batch)
            add_utilisation(row, best_peaks(measured, table))
        except Exception as e:  # one failing config must not end the run
            traceback.print_exc()
            row = {"config": spec, "error": f"{type(e).__name__}: {e}"}
        rows.append(row)
        common.print_table([table_row(row)], COLUMNS)
    measured.append(measure_peaks(args.dtype, devices, sizes, args.peak_repeats))
    peaks = best_peaks(measured, table)
    for row in rows:
        if "error" not in row:
            add_utilisation(row, peaks)
    print()
    common.print_table([table_row(r) for r in rows], COLUMNS)
    each = ", ".join(f"{m['flops_per_device'] / 1e9:.1f}" for m in measured)
    print(
        f"{args.dtype} matmul peak per device, GFLOP/s: before each config and at the end "
        f"{each}; MFU uses the best, {peaks['measured'] / 1e9:.1f}; table: "
        f"{table and table / 1e9}"
    )
    body = {
        "settings": vars(args),
        "peak": {
            "dtype": args.dtype,
            "sizes": list(sizes),
            "measured": measured,
            "used_flops_per_device": peaks["measured"],
            "table_flops_per_device": table,
        },
        "rows": rows,
        "failed": [r["config"] for r in rows if "error" in r],
    }
    common.write_report(args.out, meta, body)


if __name__ == "__main__":
    main()
