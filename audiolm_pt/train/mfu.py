"""Model FLOPs utilisation: peak FLOP/s per accelerator, a measured matmul peak, and MFU /
TFLOP/s per device from the models' analytic FLOP counts (`models.flops`).

Peak figures are the vendors' dense (no structured sparsity) per-chip numbers:
- TPU v4 275, v5e 197, v5p 459, v6e (Trillium) 918 TFLOP/s bf16 (cloud.google.com/tpu/docs/
  v4, v5e, v5p, v6e). Google lists no fp32 figure: XLA runs f32 matmuls at default precision
  as single bf16 passes on the MXU, so the bf16 peak is also the f32 ceiling there.
- NVIDIA A100 SXM: 312 bf16 tensor core, 156 TF32, 19.5 FP32 (A100 datasheet).
- NVIDIA H100 SXM: 989 bf16, 495 TF32, 67 FP32 (H100 datasheet; the 1,979 / 989 figures
  there are with sparsity). H200 SXM has the H100's compute: 989 bf16, 495 TF32, 67 FP32.
"""

import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.flops import train_flops_per_example

_T = 1e12
# Matched in order against `jax.Device.device_kind` (lower-cased), so "v5 lite" precedes "v5".
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("tpu v4", {"bfloat16": 275 * _T, "float32": 275 * _T}),
    ("tpu v5 lite", {"bfloat16": 197 * _T, "float32": 197 * _T}),
    ("tpu v5e", {"bfloat16": 197 * _T, "float32": 197 * _T}),
    ("tpu v5", {"bfloat16": 459 * _T, "float32": 459 * _T}),
    ("tpu v6 lite", {"bfloat16": 918 * _T, "float32": 918 * _T}),
    ("tpu v6e", {"bfloat16": 918 * _T, "float32": 918 * _T}),
    ("a100", {"bfloat16": 312 * _T, "tfloat32": 156 * _T, "float32": 19.5 * _T}),
    ("h100", {"bfloat16": 989 * _T, "tfloat32": 495 * _T, "float32": 67 * _T}),
    ("h200", {"bfloat16": 989 * _T, "tfloat32": 495 * _T, "float32": 67 * _T}),
)


def peak_flops_per_device(device_kind: str, dtype: str) -> float | None:
    """The vendor peak for a device kind and compute dtype, or None when not in the table."""
    kind = device_kind.lower()
    for key, peaks in PEAK_FLOPS:
        if key in kind:
            if dtype not in peaks:
                raise ValueError(f"dtype {dtype!r}: peaks for {key} are known for {sorted(peaks)}")
            return peaks[dtype]
    return None


def measure_matmul_peak(
    dtype: str = "float32", size: int = 2048, repeats: int = 5, device: jax.Device | None = None
) -> tuple[float, float]:
    """(FLOP/s, FLOPs per matmul) of the best of `repeats` timed [size, size] matmuls in
    `dtype` on one device: the practical ceiling where the table has no entry (CPUs)."""
    return matmul_peak_per_device(dtype, size, repeats, [device or jax.devices()[0]])


def _square_matmul(dtype: str, size: int, devices: Sequence[jax.Device]) -> Callable[[], jax.Array]:
    """A call in which every device in `devices` multiplies its own [size, size] pair."""
    mesh = Mesh(np.asarray(devices), ("d",))
    spread = NamedSharding(mesh, PartitionSpec("d"))
    shape = (len(devices), size, size)
    # Drawn in place, so no device ever holds every device's operands.
    draw = jax.jit(lambda key: jax.random.normal(key, shape, dtype), out_shardings=spread)
    key_a, key_b = jax.random.split(jax.random.key(0))
    a, b = draw(key_a), draw(key_b)
    matmul = jax.jit(jnp.matmul, out_shardings=spread)
    matmul(a, b).block_until_ready()
    return lambda: matmul(a, b).block_until_ready()


def matmul_peak_per_device(
    dtype: str, size: int, repeats: int, devices: Sequence[jax.Device]
) -> tuple[float, float]:
    """(FLOP/s per device, FLOPs per matmul) of the best of `repeats` timed rounds in which
    every device in `devices` multiplies its own [size, size] pair at once. Simulated CPU
    devices share the host's cores, so the figure is what each gets when all are busy, as in
    a data-parallel step."""
    run = _square_matmul(dtype, size, devices)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    flops = 2.0 * size**3
    return flops / best, flops


def sustained_matmul_rate(
    dtype: str, size: int, seconds: float, devices: Sequence[jax.Device]
) -> float:
    """Mean FLOP/s per device over back-to-back [size, size] matmuls (as in
    `matmul_peak_per_device`) for at least `seconds`: the peak as a sustained rate, to set
    beside a train step timed over a similar window."""
    run = _square_matmul(dtype, size, devices)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count == 0:
        run()
        count += 1
    return 2.0 * size**3 * count / elapsed


def best_matmul_peak(
    dtype: str, sizes: Sequence[int], repeats: int, devices: Sequence[jax.Device]
) -> tuple[float, dict[int, float]]:
    """The best per-device FLOP/s over square matmuls of several `sizes` (small ones are
    latency-bound, large ones may fall out of cache), and the figure at each size."""
    by_size = {s: matmul_peak_per_device(dtype, s, repeats, devices)[0] for s in sizes}
    return max(by_size.values()), by_size


def train_step_flops(
    cfg: ModelConfig, global_batch_size: int, num_frames: int, num_tokens: int
) -> float:
    """Analytic model FLOPs of one training step on the global batch (forward + backward)."""
    return global_batch_size * train_flops_per_example(cfg, num_frames, num_tokens)


def utilisation(
    step_flops: float, step_seconds: float, num_devices: int, peak_per_device: float | None
) -> dict[str, float]:
    """`tflops_per_device` achieved and, when a peak is known, `mfu` in [0, 1]."""
    achieved = step_flops / step_seconds / num_devices
    out = {"tflops_per_device": achieved / _T}
    if peak_per_device:
        out["mfu"] = achieved / peak_per_device
    return out
