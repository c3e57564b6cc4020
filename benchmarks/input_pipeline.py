"""Input pipeline throughput: stored features vs fbank on the host, 0/1/2 Grain workers, and
the same clip load through a PyTorch DataLoader with librosa log-mel (or a plain librosa loop
when torch is missing). Prints a table, writes benchmarks/results/input_pipeline.json.

    python -m audiolm_pt.data.builders --format=demo --source_dir=/tmp/demo1k \
        --data_dir=/tmp/demo_tfds --store_waveform
    python benchmarks/input_pipeline.py --data_dir=/tmp/demo_tfds [--compare_step]

`--compare_step` adds the pipeline against the train step's appetite on the same cores: for
each of `--compare_configs`, the examples/s of the pipeline with the settings of
configs/demo.py (its workers, tokenizer, augmentation) at the config's batch shape, over the
examples/s its train step consumes with batches ready (`train_step.py`'s loop figure), both
measured alone one after the other. Target: at least 3x.
"""

import importlib.util
import time
import types
from typing import Any

import common
import jax
import librosa
import numpy as np

from audiolm_pt.data.pipeline import make_iterator, tfds_source
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.data.processing import decode_waveform

COMPARE_CONFIGS = ("demo:contrastive", "contrastive:small")


def _timed(batches, num_batches: int, batch_size: int) -> dict[str, float]:
    """Times ``num_batches`` batches after a first one (which pays for worker start-up)."""
    next(batches)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(batches)
    seconds = time.perf_counter() - start
    return {
        "batches_per_s": num_batches / seconds,
        "clips_per_s": num_batches * batch_size / seconds,
    }


def grain_run(source, mode: str, workers: int, args) -> dict[str, float]:
    cfg = PipelineConfig(
        global_batch_size=args.batch_size,
        max_frames=args.max_frames,
        num_workers=workers,
        feature_source="host" if mode == "fbank" else "stored",
    )
    it = make_iterator({"demo": source}, cfg, process_index=0, process_count=1)
    try:
        result = _timed(it, args.num_batches, args.batch_size)
        result["skipped"] = it.skipped
        return result
    finally:
        it.close()


class LibrosaClips:
    """The PyTorch-style dataset: waveform → librosa log-mel → random crop/pad."""

    def __init__(self, source, max_frames: int):
        self.source, self.max_frames = source, max_frames

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        record = self.source[index % len(self.source)]
        wave = decode_waveform(record["waveform"]).astype(np.float32) / 32768
        mel = librosa.feature.melspectrogram(
            y=wave, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=80
        )
        frames = np.log(mel + 1e-6).T[: self.max_frames]
        out = np.zeros((self.max_frames, 80), np.float32)
        out[: len(frames)] = frames
        return out, len(frames)


def torch_run(source, workers: int, args) -> dict[str, float]:
    import torch  # optional: only when installed

    clips = LibrosaClips(source, args.max_frames)
    sampler = torch.utils.data.RandomSampler(clips, replacement=True, num_samples=10**9)
    loader = torch.utils.data.DataLoader(
        clips,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        # fork after JAX and Grain started threads can kill workers; spawn is safe.
        multiprocessing_context="spawn" if workers else None,
    )
    return _timed(iter(loader), args.num_batches, args.batch_size)


def librosa_loop(source, args) -> dict[str, float]:
    clips = LibrosaClips(source, args.max_frames)
    rng = np.random.default_rng(0)

    def batches():
        while True:
            yield [clips[int(i)] for i in rng.integers(0, len(clips), args.batch_size)]

    return _timed(batches(), args.num_batches, args.batch_size)


def compare_step(args) -> list[dict[str, Any]]:
    """Pipeline examples/s over train-step examples/s, per config, on one device."""
    import train_step  # the sibling benchmark; its imports stay off the plain run

    from audiolm_pt import main as main_lib

    on_cpu = jax.devices()[0].platform == "cpu"
    dtype = "float32" if on_cpu else "bfloat16"
    devices = jax.devices()[:1]
    sizes = train_step.PEAK_SIZES["cpu" if on_cpu else "accelerator"]
    if args.smoke:
        sizes = (128, 256)
    peak = train_step.measure_peaks(dtype, devices, sizes, 3)
    peaks = {"measured": peak["flops_per_device"], "table": None}
    step_args = types.SimpleNamespace(
        steps=args.compare_steps,
        warmup=1,
        trace_dir="",
        data_dir="",
        dtype=dtype,
        remat="",
        # train_step.py's paired peaks, at the size that gave the best peak.
        pairs=1 if args.smoke else 3,
        pair_size=int(max(peak["by_size"], key=peak["by_size"].get)),
        pair_seconds=0.05 if args.smoke else 1.0,
    )
    rows = []
    for spec in common.split_specs(args.compare_configs):
        shape = train_step.SMOKE_SHAPE if args.smoke else train_step.default_shape(spec, on_cpu)
        case = common.make_case(spec, *shape, dtype=dtype)
        config = train_step.demo_data_config(case, args.data_dir)
        iterator = main_lib.make_iterator(config, "train")
        try:
            piped = _timed(iterator, args.num_batches, shape[0])
            piped["skipped"] = dict(iterator.skipped)
        finally:
            iterator.close()
        step = train_step.measure(case, devices, step_args)
        train_step.add_utilisation(step, peaks)
        rows.append(
            {
                "config": spec,
                "shape": list(shape),
                "pipeline_workers": config.data.pipeline.num_workers,
                "pipeline_examples_per_s": piped["clips_per_s"],
                "pipeline_skipped": piped["skipped"],
                "step_examples_per_s": step["examples_per_s"],
                "step_mfu_measured": step["mfu_measured"],
                "ratio": piped["clips_per_s"] / step["examples_per_s"],
            }
        )
    common.print_table(
        rows,
        (
            ("config", "config", "s"),
            ("shape", "BxFxT", lambda v: "x".join(map(str, v))),
            ("pipeline_workers", "workers", "d"),
            ("pipeline_examples_per_s", "pipeline ex/s", ".1f"),
            ("step_examples_per_s", "step ex/s", ".1f"),
            ("ratio", "ratio (target >= 3)", ".2f"),
        ),
    )
    return rows


def main() -> None:
    parser = common.parser(__doc__.split("\n")[0], "input_pipeline")
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir holding the demo build")
    parser.add_argument("--name", default="demo")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_batches", type=int, default=20)
    parser.add_argument("--max_frames", type=int, default=1000)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--compare_step", action="store_true", help="pipeline vs train step")
    parser.add_argument("--compare_configs", default=",".join(COMPARE_CONFIGS))
    parser.add_argument("--compare_steps", type=int, default=5, help="timed train steps")
    args = parser.parse_args()
    if args.smoke:
        args.num_batches, args.workers, args.compare_steps = 2, "0", 2
        args.compare_configs = "demo:contrastive,tiny"
    meta = common.run_metadata()
    source = tfds_source(args.name, args.split, args.data_dir)
    workers = [int(w) for w in args.workers.split(",")]
    # Without stored waveforms every record would be skipped and the fbank rows never finish.
    has_waveform = len(source[0].get("waveform", b"")) > 0
    if not has_waveform:
        print(
            f"{args.data_dir}: no stored waveforms (build with --store_waveform); "
            "on-the-fly fbank and librosa rows left out"
        )
    rows = []
    for mode in ("stored", "fbank") if has_waveform else ("stored",):
        for w in workers:
            rows.append(
                {"pipeline": f"grain/{mode}", "workers": w, **grain_run(source, mode, w, args)}
            )
    if has_waveform and importlib.util.find_spec("torch") is None:
        rows.append({"pipeline": "librosa loop", "workers": 0, **librosa_loop(source, args)})
    elif has_waveform:
        for w in workers:
            rows.append({"pipeline": "torch+librosa", "workers": w, **torch_run(source, w, args)})
    for row in rows:
        row["clips_per_s_per_core"] = row["clips_per_s"] / max(row["workers"], 1)
    fbank = {r["workers"]: r["clips_per_s"] for r in rows if r["pipeline"] == "grain/fbank"}
    for row in rows:
        if row["pipeline"] not in ("grain/stored", "grain/fbank") and row["workers"] in fbank:
            row["grain_fbank_over_this"] = fbank[row["workers"]] / row["clips_per_s"]
    common.print_table(
        rows,
        (
            ("pipeline", "pipeline", "s"),
            ("workers", "workers", "d"),
            ("batches_per_s", "batch/s", ".2f"),
            ("clips_per_s", "clips/s", ".1f"),
            ("clips_per_s_per_core", "clips/s/core", ".1f"),
            ("grain_fbank_over_this", "ratio", ".2f"),
        ),
    )
    body = {
        "settings": vars(args),
        "num_clips": len(source),
        "stored_waveforms": bool(has_waveform),
        "rows": rows,
    }
    if args.compare_step:
        body["compare_step"] = compare_step(args)
    common.write_report(args.out, meta, body)


if __name__ == "__main__":
    main()
