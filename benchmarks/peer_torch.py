"""Our train step against its PyTorch twin (`peer_torch_model.py`) on the same CPU, same
synthetic batches, same initial weights, in one process.

    python benchmarks/peer_torch.py                      # contrastive:small and the demo
    python benchmarks/peer_torch.py --configs=demo:contrastive+model.audio.token_keep=1 --rounds=3

The demo model is compared without its token dropout, which the twin does not implement.

Per config:
- FLOPs: our analytic forward FLOPs (`models.flops`) against what torch's own counter sees in
  the twin's forward pass; they must be equal, so one FLOP count serves both sides;
- agreement: from identical weights, the loss on one batch, the gradient norm, one AdamW
  step (clipping, decay groups, the same learning rate) and the loss on the next batch, with
  dropout off on both sides (a dropout mask cannot be shared);
- speed: `--rounds` rounds, each timing `--steps` steps of our jitted step, the twin's eager
  step and its `torch.compile`d step (fused AdamW in both), in an order that rotates between
  rounds; each round's ratio divides our examples/s by the better torch mode's in that round,
  so the machine's drift cancels. Each mode's fraction of the float32 matmul peak measured in
  the same run (the best of jax's and torch's square matmuls, before and after) is reported.
The machine's load average at start and end is in `meta`.
"""

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import common
import jax
import numpy as np
import peer_torch_model as peer
import torch
import train_step

from audiolm_pt.train import mfu
from audiolm_pt.train.optimizer import path_string

DEMO = "demo:contrastive+model.audio.token_keep=1"
DEFAULT_CONFIGS = ("contrastive:small", DEMO)
# The goal of the comparison: our examples/s over the better torch mode on contrastive:small.
GOAL = {"contrastive:small": 1.3}
MODES = ("ours", "torch_eager", "torch_compile")
BATCH_KEYS = ("features", "feature_mask", "text_tokens", "text_mask", "text_features")
# Dropout off on both sides for the agreement check.
NO_DROPOUT = "+model.text.transformer.dropout_rate=0.0"


def flat_params(state: dict) -> dict[str, np.ndarray]:
    return {
        path_string(p): np.asarray(leaf)
        for p, leaf in jax.tree_util.tree_leaves_with_path(state["params"])
    }


def torch_optimizer(case: common.Case, twin: peer.Twin) -> torch.optim.Optimizer:
    o = case.parsed.optimizer
    return peer.adamw(twin, 0.0, o.weight_decay, o.b1, o.b2, o.eps)


def torch_step(model: Callable, twin: peer.Twin, opt, clip: float, lr: float) -> Callable:
    """One training step of `model` (the twin, eager or compiled): loss, backward, global-norm
    clipping, AdamW at `lr`. Returns (loss, gradient norm before clipping)."""
    for group in opt.param_groups:
        group["lr"] = lr

    def step(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        opt.zero_grad(set_to_none=True)
        loss = model(batch)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), clip or float("inf"))
        opt.step()
        return loss.detach(), norm

    return step


def check_flops(case: common.Case, twin: peer.Twin, batch: dict[str, torch.Tensor]) -> dict:
    """Our analytic forward FLOPs of the step's parts against torch's count of the twin's."""
    from audiolm_pt.models import flops

    batch_size, frames, tokens = case.shape
    parts = flops.model_flops(case.model, frames, tokens, train=True)
    cached = parts.get("text_encoder", 0.0) if case.model.text.locked else 0.0
    ours = batch_size * (parts["total"] - cached)
    counted = peer.forward_flops(twin, batch)
    return {"ours_forward": ours, "torch_counted_forward": counted, "ratio": counted / ours}


def relative_error(new: dict, ref_new: dict, ref_old: dict) -> dict[str, float]:
    """Distance between two updated weight sets relative to the reference's update size: over
    all parameters and the largest per tensor."""
    diff = sum(float(torch.sum((new[k] - ref_new[k]) ** 2)) for k in ref_new)
    moved = sum(float(torch.sum((ref_new[k] - ref_old[k]) ** 2)) for k in ref_new)
    per_tensor = {
        k: float(
            torch.norm(new[k] - ref_new[k]) / max(float(torch.norm(ref_new[k] - ref_old[k])), 1e-30)
        )
        for k in ref_new
    }
    worst = max(per_tensor, key=per_tensor.get)
    return {
        "update_rel_error": (diff / max(moved, 1e-30)) ** 0.5,
        "worst_tensor": worst,
        "worst_tensor_rel_error": per_tensor[worst],
    }


def check_agreement(spec: str, shape: tuple[int, int, int], devices: list) -> dict[str, Any]:
    """Identical weights and batches, dropout off: losses before and after one step, the
    gradient norm and the step's weight update on both sides."""
    case = common.make_case(spec + NO_DROPOUT, *shape)
    trainer = common.trainer_for(case, devices)
    host = common.host_batches(case)
    state = trainer.init()
    before = flat_params(state)
    twin = peer.load_twin(case.model, before)
    old = {k: v.clone() for k, v in twin.state_dict().items()}
    on_device = [jax.device_put(b, trainer.batch_sharding) for b in host]
    state, m0 = trainer.step(state, on_device[0])
    ours_one = peer.state_dict_from(flat_params(state), twin)
    _, m1 = trainer.step(state, on_device[1])  # its loss is taken before its update
    opt = torch_optimizer(case, twin)
    lr = float(trainer.schedule(0))
    step = torch_step(twin, twin, opt, case.parsed.optimizer.clip_norm, lr)
    batches = [peer.to_torch(b, BATCH_KEYS) for b in host]
    twin.train()
    loss0, norm = step(batches[0])
    with torch.no_grad():
        loss1 = twin(batches[1])
    out = {
        "lr": lr,
        "loss_ours": float(m0["loss"]),
        "loss_torch": float(loss0),
        "grad_norm_ours": float(m0["grad_norm"]),
        "grad_norm_torch": float(norm),
        "loss_after_step_ours": float(m1["loss"]),
        "loss_after_step_torch": float(loss1),
        **relative_error(twin.state_dict(), ours_one, old),
    }
    out["loss_abs_diff"] = abs(out["loss_ours"] - out["loss_torch"])
    out["loss_after_step_abs_diff"] = abs(
        out["loss_after_step_ours"] - out["loss_after_step_torch"]
    )
    return out


def torch_matmul_peak(sizes: tuple[int, ...], repeats: int) -> float:
    """The best float32 FLOP/s of square torch.mm over `sizes` (best of `repeats`)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2.0 * n**3 / (time.perf_counter() - start))
    return best


def measure_peak(devices: list, args: Any) -> dict[str, float]:
    sizes = common.parse_ints(args.peak_sizes)
    jax_peak, _ = mfu.best_matmul_peak("float32", sizes, args.peak_repeats, devices)
    return {"jax": jax_peak, "torch": torch_matmul_peak(sizes, args.peak_repeats)}


def timed(run: Callable[[], Any], wait: Callable[[Any], Any], steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        wait(run())
        times.append(time.perf_counter() - start)
    return times


def speed(spec: str, shape: tuple[int, int, int], devices: list, args: Any) -> dict[str, Any]:
    """FLOP check and alternating timed rounds of our step, torch eager and torch.compile."""
    case = common.make_case(spec, *shape)
    trainer = common.trainer_for(case, devices)
    host = common.host_batches(case, 1)[0]
    state = trainer.init()
    twin = peer.load_twin(case.model, flat_params(state))
    batch_t = peer.to_torch(host, BATCH_KEYS)
    flop_check = check_flops(case, twin, batch_t)
    opt = torch_optimizer(case, twin)
    lr = float(trainer.schedule(0))
    clip = case.parsed.optimizer.clip_norm
    twin.train()
    compiled = torch.compile(twin)
    steps = {
        "torch_eager": torch_step(twin, twin, opt, clip, lr),
        "torch_compile": torch_step(compiled, twin, opt, clip, lr),
    }
    batch = jax.device_put(host, trainer.batch_sharding)
    holder = {"state": state}

    def ours():
        holder["state"], metrics = trainer.step(holder["state"], batch)
        return holder["state"], metrics

    runs = {
        "ours": (ours, jax.block_until_ready),
        "torch_eager": (lambda: steps["torch_eager"](batch_t), lambda out: float(out[0])),
        "torch_compile": (lambda: steps["torch_compile"](batch_t), lambda out: float(out[0])),
    }
    first = {}
    for mode, (run, wait) in runs.items():  # compile (ours, torch.compile) and warm up
        start = time.perf_counter()
        timed(run, wait, 1)
        first[mode] = time.perf_counter() - start
        timed(run, wait, args.warmup)
    rounds = []
    for r in range(args.rounds):
        order = MODES[r % 3 :] + MODES[: r % 3]
        row = {m: statistics.median(timed(*runs[m], args.steps)) for m in order}
        row["order"] = list(order)
        rounds.append(row)
        print(f"{spec} round {r}: " + ", ".join(f"{m} {row[m]:.3f} s" for m in MODES))
    batch_size = shape[0]
    train_flops = mfu.train_step_flops(case.model, *shape)
    ratios = [min(r["torch_eager"], r["torch_compile"]) / r["ours"] for r in rounds]
    return {
        "config": spec,
        "batch": batch_size,
        "frames": shape[1],
        "tokens": shape[2],
        "flops": flop_check,
        "train_flops_per_step": train_flops,
        "first_call_s": first,
        "rounds": rounds,
        "modes": {
            m: {
                "step_s": statistics.median(r[m] for r in rounds),
                "examples_per_s": batch_size / statistics.median(r[m] for r in rounds),
            }
            for m in MODES
        },
        "ours_over_best_torch": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "per_round": ratios,
        },
    }


def _median_time(run: Callable[[], Any], wait: Callable[[Any], Any], reps: int) -> float:
    timed(run, wait, 1)
    return statistics.median(timed(run, wait, reps))


def where_time_goes(spec: str, shape: tuple[int, int, int], devices: list, reps: int) -> dict:
    """Seconds of the forward pass and of forward + backward (gradients of all parameters)
    of each part on both sides (torch eager), next to the whole step: the profile that says
    which part a gap comes from."""
    from flax import nnx

    case = common.make_case(spec, *shape)
    trainer = common.trainer_for(case, devices)
    state = trainer.init()
    host = common.host_batches(case, 1)[0]
    batch = jax.device_put(host, trainer.batch_sharding)
    twin = peer.load_twin(case.model, flat_params(state))
    twin.train()
    bt = peer.to_torch(host, BATCH_KEYS)
    ours = {
        "audio_front_end": lambda m: m.audio_encoder.frontend(
            batch["features"], batch["feature_mask"]
        )[0],
        "audio_encoder": lambda m: m.encode_audio(batch["features"], batch["feature_mask"])[0],
    }
    theirs = {
        "audio_front_end": lambda: twin.audio.front_end(bt["features"], bt["feature_mask"])[0],
        "audio_encoder": lambda: twin.audio(bt["features"], bt["feature_mask"])[0],
    }
    if not case.model.text.locked:
        ours["text_encoder"] = lambda m: m.text_features(batch["text_tokens"], batch["text_mask"])
        theirs["text_encoder"] = lambda: twin.text(bt["text_tokens"], bt["text_mask"])
    out = {}
    for name, part in ours.items():

        def total(params, part=part):
            return jax.numpy.sum(part(nnx.merge(trainer.graphdef, params, state["rest"])))

        fwd, grad = jax.jit(total), jax.jit(jax.grad(total))
        torch_part = theirs[name]

        def torch_grad(torch_part=torch_part):
            twin.zero_grad(set_to_none=True)
            loss = torch_part().sum()
            loss.backward()
            return loss.detach()

        with torch.no_grad():
            torch_fwd = _median_time(lambda p=torch_part: p().sum(), float, reps)
        out[name] = {
            "ours_forward_s": _median_time(
                lambda f=fwd: f(state["params"]), jax.block_until_ready, reps
            ),
            "ours_forward_backward_s": _median_time(
                lambda g=grad: g(state["params"]), jax.block_until_ready, reps
            ),
            "torch_forward_s": torch_fwd,
            "torch_forward_backward_s": _median_time(torch_grad, float, reps),
        }
    return out


def add_peak_fractions(row: dict[str, Any], peak: float) -> None:
    for m in row["modes"].values():
        m["tflops"] = row["train_flops_per_step"] / m["step_s"] / 1e12
        m["peak_fraction"] = row["train_flops_per_step"] / m["step_s"] / peak
    goal = GOAL.get(row["config"])
    if goal:
        row["goal"] = {
            "ours_over_best_torch": goal,
            "met": row["ours_over_best_torch"]["median"] >= goal,
        }


def main() -> None:
    p = common.parser(__doc__.split("\n")[0], "peer_torch")
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode and round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak_sizes", default="1024,2048,3072")
    p.add_argument("--peak_repeats", type=int, default=5)
    args = p.parse_args()
    if args.smoke:
        args.configs = DEMO
        args.rounds, args.steps, args.warmup = 2, 1, 1
        args.peak_sizes, args.peak_repeats = "128,256", 2
    torch.set_num_threads(os.cpu_count() or 1)
    meta = common.run_metadata()
    meta["torch"] = torch.__version__
    meta["torch_threads"] = torch.get_num_threads()
    devices = jax.devices()[:1]
    peaks = [measure_peak(devices, args)]
    rows = []
    for spec in common.split_specs(args.configs):
        shape = (4, 64, 8) if args.smoke else train_step.default_shape(spec, on_cpu=True)
        row = speed(spec, shape, devices, args)
        row["agreement"] = check_agreement(spec, shape, devices)
        row["where_time_goes"] = where_time_goes(spec, shape, devices, args.steps)
        rows.append(row)
    peaks.append(measure_peak(devices, args))
    peak = max(max(x.values()) for x in peaks)
    for row in rows:
        add_peak_fractions(row, peak)
    common.write_report(
        args.out,
        meta,
        {"settings": vars(args), "peaks": peaks, "peak_flops": peak, "rows": rows},
    )
    common.print_table(
        [
            {"config": r["config"], "mode": m, **v, "ratio": r["ours_over_best_torch"]["median"]}
            for r in rows
            for m, v in r["modes"].items()
        ],
        (
            ("config", "config", "s"),
            ("mode", "mode", "s"),
            ("examples_per_s", "ex/s", ".4g"),
            ("peak_fraction", "of peak", ".1%"),
            ("ratio", "ours/best torch", ".2f"),
        ),
    )


if __name__ == "__main__":
    main()
