"""Input pipeline throughput: stored features vs on-the-fly fbank, 0/1/2 Grain workers, and
the same clip load through a PyTorch DataLoader with librosa log-mel (or a plain librosa loop
when torch is missing). Prints a table, writes benchmarks/results/input_pipeline.json.

    python -m audiolm_pt.data.builders --format=demo --source_dir=/tmp/demo1k \
        --data_dir=/tmp/demo_tfds --store_waveform
    python benchmarks/input_pipeline.py --data_dir=/tmp/demo_tfds
"""

import argparse
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

import librosa
import numpy as np

from audiolm_pt.data.pipeline import make_iterator, tfds_source
from audiolm_pt.data.pipeline_config import PipelineConfig

RESULTS = Path(__file__).parent / "results" / "input_pipeline.json"


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
        fbank_on_the_fly=mode == "fbank",
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
        wave = np.asarray(self.source[index % len(self.source)]["waveform"], np.float32) / 32768
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir holding the demo build")
    parser.add_argument("--name", default="demo")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_batches", type=int, default=20)
    parser.add_argument("--max_frames", type=int, default=1000)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    source = tfds_source(args.name, args.split, args.data_dir)
    workers = [int(w) for w in args.workers.split(",")]
    rows = []
    for mode in ("stored", "fbank"):
        for w in workers:
            rows.append(
                {"pipeline": f"grain/{mode}", "workers": w, **grain_run(source, mode, w, args)}
            )
    if importlib.util.find_spec("torch") is None:
        rows.append({"pipeline": "librosa loop", "workers": 0, **librosa_loop(source, args)})
    else:
        for w in workers:
            rows.append({"pipeline": "torch+librosa", "workers": w, **torch_run(source, w, args)})
    for row in rows:
        row["clips_per_s_per_core"] = row["clips_per_s"] / max(row["workers"], 1)
    fbank = {r["workers"]: r["clips_per_s"] for r in rows if r["pipeline"] == "grain/fbank"}
    for row in rows:
        if row["pipeline"] not in ("grain/stored", "grain/fbank") and row["workers"] in fbank:
            row["grain_fbank_over_this"] = fbank[row["workers"]] / row["clips_per_s"]
    print(
        f"{'pipeline':16} {'workers':>7} {'batch/s':>8} {'clips/s':>8} {'clips/s/core':>12} ratio"
    )
    for r in rows:
        ratio = f"{r['grain_fbank_over_this']:.2f}" if "grain_fbank_over_this" in r else ""
        print(
            f"{r['pipeline']:16} {r['workers']:>7} {r['batches_per_s']:>8.2f} "
            f"{r['clips_per_s']:>8.1f} {r['clips_per_s_per_core']:>12.1f} {ratio}"
        )
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": vars(args),
        "num_clips": len(source),
        "rows": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
