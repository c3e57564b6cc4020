"""Host CPU seconds per example for each front end (fbank, log-mel) and each place features
come from: stored by the builder, computed on the host from the stored FLAC waveform, or
computed on the device (the host decodes FLAC and cuts frame-exact segments; the jitted
step computes features and SpecAugment). Prints a table, writes
benchmarks/results/frontend_cost.json.

    python benchmarks/frontend_cost.py --source_dir=demo_out/corpus [--split=test]

Builds the split twice from the demo-format corpus (fbank and log-mel features, both with the
waveform) into `--data_dir` (a temporary directory by default), then reads `--num_batches`
training batches (random crops of `--max_frames`, SpecAugment) through the Grain pipeline
with no worker processes, so that every host cycle is this process's: `host_cpu_s` is its
CPU time (all threads) per example. The device path's own cost is measured apart, as the
jitted featurizer's wall time per example on `jax.devices()[0]` (on a CPU-only machine that is
the same CPU, so there the work moves, it does not vanish). `--smoke` makes its own corpus of
a few synthetic clips.
"""

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import jax
import numpy as np
import soundfile as sf

from audiolm_pt.audio import LogMelConfig
from audiolm_pt.data.builders.tfds_builder import build_dataset
from audiolm_pt.data.device_features import make_featurizer
from audiolm_pt.data.pipeline import make_iterator, tfds_source
from audiolm_pt.data.pipeline_config import PipelineConfig

# The models read 80 bins; log-mel's own default is 64.
FRONTENDS = {"fbank": {}, "log_mel": {"log_mel": LogMelConfig(n_mels=80)}}
SOURCES = ("stored", "host", "device")


def _smoke_corpus(root: Path, num_clips: int = 12) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for i in range(num_clips):
        t = np.arange(int(rng.uniform(1.0, 3.0) * 16000)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.normal(size=t.size)
        sf.write(root / "audio" / f"c{i}.wav", wave.astype(np.float32), 16000)
        caption = [{"text": f"tone {i}", "style": "short"}]
        rows.append(
            {"id": f"c{i}", "split": "test", "audio": f"audio/c{i}.wav", "captions": caption}
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _build(source_dir: Path, data_dir: Path, split: str, workers: int) -> dict[str, str]:
    names = {}
    for frontend, options in FRONTENDS.items():
        name = f"frontend_cost_{frontend}"
        build_dataset(
            source_dir,
            data_dir,
            format="demo",
            name=name,
            splits=(split,),
            store_waveform=True,
            workers=workers,
            frontend=frontend,
            **options,
        )
        names[frontend] = name
    return names


def measure(source, cfg: PipelineConfig, num_batches: int) -> dict[str, Any]:
    """Host CPU and wall seconds per example over `num_batches` after a first batch, and for
    the device path the jitted featurizer's wall seconds per example on those batches."""
    it = make_iterator({"data": source}, cfg, process_index=0, process_count=1)
    try:
        next(it)
        cpu, wall = time.process_time(), time.perf_counter()
        batches = [next(it) for _ in range(num_batches)]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        skipped = it.skipped
    finally:
        it.close()
    examples = num_batches * cfg.global_batch_size
    row = {
        "host_cpu_s_per_example": cpu / examples,
        "host_wall_s_per_example": wall / examples,
        "batch_bytes": int(sum(v.nbytes for v in batches[0].values())),
        "skipped": skipped,
    }
    featurize = make_featurizer(cfg)
    if featurize is not None:
        step = jax.jit(featurize)
        key = jax.random.PRNGKey(0)
        placed = [jax.device_put(b) for b in batches]
        jax.block_until_ready(step(placed[0], key))
        start = time.perf_counter()
        for i, batch in enumerate(placed):
            jax.block_until_ready(step(batch, jax.random.fold_in(key, i)))
        row["device_s_per_example"] = (time.perf_counter() - start) / examples
    return row


def main() -> None:
    parser = common.parser(__doc__.split("\n")[0], "frontend_cost")
    parser.add_argument("--source_dir", help="a demo-format corpus (not needed with --smoke)")
    parser.add_argument("--data_dir", default="", help="where to build (default: a temp dir)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_batches", type=int, default=20)
    parser.add_argument("--max_frames", type=int, default=1000)
    parser.add_argument("--build_workers", type=int, default=2)
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.num_batches, args.max_frames = 4, 2, 200
    elif not args.source_dir:
        parser.error("--source_dir is required without --smoke")
    meta = common.run_metadata()
    with tempfile.TemporaryDirectory() as tmp:
        source_dir = _smoke_corpus(Path(tmp) / "corpus") if args.smoke else Path(args.source_dir)
        data_dir = Path(args.data_dir or Path(tmp) / "tfds")
        names = _build(source_dir, data_dir, args.split, args.build_workers)
        rows = []
        for frontend, options in FRONTENDS.items():
            source = tfds_source(names[frontend], args.split, str(data_dir))
            for feature_source in SOURCES:
                cfg = PipelineConfig(
                    global_batch_size=args.batch_size,
                    max_frames=args.max_frames,
                    num_workers=0,
                    read_threads=1,
                    frontend=frontend,
                    feature_source=feature_source,
                    **options,
                )
                row = measure(source, cfg, args.num_batches)
                rows.append({"frontend": frontend, "features": feature_source, **row})
    for row in rows:
        host = next(r for r in rows if r["frontend"] == row["frontend"] and r["features"] == "host")
        row["host_cpu_vs_host_path"] = (
            row["host_cpu_s_per_example"] / host["host_cpu_s_per_example"]
        )
    common.print_table(
        rows,
        (
            ("frontend", "front end", "s"),
            ("features", "features", "s"),
            ("host_cpu_s_per_example", "host CPU s/ex", ".5f"),
            ("host_cpu_vs_host_path", "vs host path", ".2f"),
            ("device_s_per_example", "device s/ex", ".5f"),
            ("batch_bytes", "batch bytes", "d"),
        ),
    )
    settings = {k: v for k, v in vars(args).items() if k != "data_dir"}
    options = {k: {n: dataclasses.asdict(c) for n, c in v.items()} for k, v in FRONTENDS.items()}
    body = {"settings": settings, "frontend_options": options, "rows": rows}
    common.write_report(args.out, meta, body)


if __name__ == "__main__":
    main()
