"""Input pipeline throughput against its PyTorch peer, in one run: our Grain pipeline from
stored features and from raw audio (FLAC decoded, Kaldi fbank on the host:
`feature_source="host"`), and a torch `DataLoader` doing the same from the same records
(soundfile, `torchaudio.compliance.kaldi.fbank`, crop, the same tokenizer file), at 0/1/2
workers each, in `--rounds` alternating rounds whose order rotates; each round's ratio
divides our clips/s by the peer's at the same workers. Neither side augments. Prints a
table, writes benchmarks/results/input_pipeline.json.

    python -m audiolm_pt.data.builders --format=demo --source_dir=/tmp/demo1k \
        --data_dir=/tmp/demo_tfds --store_waveform
    bash benchmarks/peer_setup.sh        # torchaudio for the peer (once)
    python benchmarks/input_pipeline.py --data_dir=/tmp/demo_tfds [--compare_step]

`--compare_step` adds the pipeline against the train step's appetite on the same cores: for
each of `--compare_configs`, the examples/s of the pipeline with the settings of
configs/demo.py (its workers, tokenizer, augmentation) at the config's batch shape, over the
examples/s its train step consumes with batches ready (`train_step.py`'s loop figure), both
measured alone one after the other. Target: at least 3x.
"""

import importlib.metadata
import io
import statistics
import time
import types
from pathlib import Path
from typing import Any

import common
import jax
import numpy as np
import soundfile

from audiolm_pt.audio.fbank import FbankConfig
from audiolm_pt.data.pipeline import make_iterator, tfds_source
from audiolm_pt.data.pipeline_config import PipelineConfig
from configs.common import minilm_dir

COMPARE_CONFIGS = ("demo:contrastive", "contrastive:small")
TORCH = "torch/kaldi"
PIPELINES = ("grain/stored", "grain/fbank", TORCH)


def torch_peer() -> dict[str, str]:
    """torch's and torchaudio's versions, or why the peer cannot run."""
    try:
        import torchaudio.compliance.kaldi  # noqa: F401
    except ImportError as e:
        return {"missing": f"{e} (bash benchmarks/peer_setup.sh installs torchaudio)"}
    return {p: importlib.metadata.version(p) for p in ("torch", "torchaudio")}


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
        tokenizer=args.tokenizer,
        max_text_len=args.max_text_len,
        # The peer does not augment; neither do we here.
        time_masks=0,
        freq_masks=0,
    )
    it = make_iterator({"demo": source}, cfg, process_index=0, process_count=1)
    try:
        result = _timed(it, args.num_batches, args.batch_size)
        result["skipped"] = it.skipped
        return result
    finally:
        it.close()


class KaldiClips:
    """The PyTorch peer's dataset, as a torch user writes it: soundfile decoding, torchaudio
    resampling (where a clip is not at 16 kHz) and Kaldi fbank
    (`torchaudio.compliance.kaldi.fbank` with our front end's options), a random crop to
    `max_frames`, one random caption tokenized by the same `tokenizers` file."""

    def __init__(self, source, max_frames: int, max_text_len: int, tokenizer: str):
        self.source, self.max_frames, self.max_text_len = source, max_frames, max_text_len
        self.tokenizer_path, self.tokenizer = tokenizer, None
        self.rng = np.random.default_rng()

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import tokenizers
        import torch
        import torchaudio

        if self.tokenizer is None:  # loaded in each worker
            self.tokenizer = tokenizers.Tokenizer.from_file(self.tokenizer_path)
        record = self.source[index]
        wave, rate = soundfile.read(io.BytesIO(bytes(record["waveform"])), dtype="float32")
        wave = torch.from_numpy(wave)[None]
        f = FbankConfig()
        if rate != f.sample_rate:
            wave = torchaudio.functional.resample(wave, rate, f.sample_rate)
        feats = torchaudio.compliance.kaldi.fbank(
            wave * f.input_scale,
            num_mel_bins=f.num_mel_bins,
            frame_length=f.frame_length_ms,
            frame_shift=f.frame_shift_ms,
            window_type=f.window_type,
            preemphasis_coefficient=f.preemph_coeff,
            remove_dc_offset=f.remove_dc_offset,
            snip_edges=f.snip_edges,
            round_to_power_of_two=f.round_to_power_of_two,
            low_freq=f.low_freq,
            high_freq=f.high_freq,
            use_power=f.use_power,
            use_log_fbank=f.use_log,
            dither=0.0,
            sample_frequency=f.sample_rate,
        )
        start = int(self.rng.integers(0, max(len(feats) - self.max_frames, 0) + 1))
        crop = feats[start : start + self.max_frames]
        features = torch.zeros(self.max_frames, f.num_mel_bins)
        features[: len(crop)] = crop
        captions = [c.decode() if isinstance(c, bytes) else c for c in record["captions"]]
        ids = self.tokenizer.encode(captions[self.rng.integers(len(captions))]).ids
        ids = ids[: self.max_text_len]
        tokens = torch.zeros(self.max_text_len, dtype=torch.int32)
        tokens[: len(ids)] = torch.tensor(ids, dtype=torch.int32)
        return {
            "features": features,
            "feature_mask": torch.arange(self.max_frames) < len(crop),
            "text_tokens": tokens,
            "text_mask": torch.arange(self.max_text_len) < len(ids),
        }


def torch_run(source, workers: int, args) -> dict[str, float]:
    import torch

    clips = KaldiClips(source, args.max_frames, args.max_text_len, args.tokenizer)
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


def run(pipeline: str, source, workers: int, args) -> dict[str, Any]:
    if pipeline == TORCH:
        return torch_run(source, workers, args)
    return grain_run(source, pipeline.split("/")[1], workers, args)


def summarise(rounds: list[dict[str, Any]], workers: list[int]) -> list[dict[str, Any]]:
    """Per pipeline and worker count: median clips/s over rounds (and its range); for our
    pipelines, the per-round ratio over the torch peer at the same workers."""
    rows = []
    for w in workers:
        for pipeline in {r["pipeline"] for r in rounds}:
            mine = [r for r in rounds if r["pipeline"] == pipeline and r["workers"] == w]
            if not mine:
                continue
            rates = [r["clips_per_s"] for r in mine]
            row = {
                "pipeline": pipeline,
                "workers": w,
                "clips_per_s": statistics.median(rates),
                "clips_per_s_range": [min(rates), max(rates)],
                "skipped": mine[-1].get("skipped", {}),
            }
            peers = {
                r["round"]: r["clips_per_s"]
                for r in rounds
                if r["pipeline"] == TORCH and r["workers"] == w
            }
            ratios = [r["clips_per_s"] / peers[r["round"]] for r in mine if r["round"] in peers]
            if pipeline != TORCH and ratios:
                row["over_torch"] = statistics.median(ratios)
                row["over_torch_range"] = [min(ratios), max(ratios)]
            rows.append(row)
    return sorted(rows, key=lambda r: (r["workers"], r["pipeline"]))


def main() -> None:
    parser = common.parser(__doc__.split("\n")[0], "input_pipeline")
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir holding the demo build")
    parser.add_argument("--name", default="demo")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_batches", type=int, default=20)
    parser.add_argument("--max_frames", type=int, default=1000)
    parser.add_argument("--max_text_len", type=int, default=32)
    parser.add_argument("--tokenizer", default="", help="tokenizer.json (default: MiniLM's)")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--compare_step", action="store_true", help="pipeline vs train step")
    parser.add_argument("--compare_configs", default=",".join(COMPARE_CONFIGS))
    parser.add_argument("--compare_steps", type=int, default=5, help="timed train steps")
    args = parser.parse_args()
    if args.smoke:
        args.num_batches, args.workers, args.compare_steps, args.rounds = 2, "0", 2, 1
        args.compare_configs = "demo:contrastive,tiny"
    args.tokenizer = args.tokenizer or str(Path(minilm_dir()) / "tokenizer.json")
    meta = common.run_metadata()
    source = tfds_source(args.name, args.split, args.data_dir)
    workers = [int(w) for w in args.workers.split(",")]
    peer = torch_peer()
    meta["torch_peer"] = peer
    pipelines = PIPELINES
    # Without stored waveforms only the stored-feature rows can run.
    if not len(source[0].get("waveform", b"")):
        print(f"{args.data_dir}: no stored waveforms (build with --store_waveform)")
        pipelines = PIPELINES[:1]
    elif "missing" in peer:
        print(f"torch peer left out: {peer['missing']}")
        pipelines = PIPELINES[:2]
    rounds = []
    for r in range(args.rounds):
        k = r % len(pipelines)
        order = pipelines[k:] + pipelines[:k]
        for w in workers:
            for pipeline in order:
                result = run(pipeline, source, w, args)
                rounds.append({"round": r, "pipeline": pipeline, "workers": w, **result})
                print(f"round {r} {pipeline} workers={w}: {result['clips_per_s']:.1f} clips/s")
    rows = summarise(rounds, workers)
    common.print_table(
        rows,
        (
            ("pipeline", "pipeline", "s"),
            ("workers", "workers", "d"),
            ("clips_per_s", "clips/s", ".1f"),
            ("over_torch", "over torch", ".2f"),
        ),
    )
    body = {
        "settings": vars(args),
        "num_clips": len(source),
        "rows": rows,
        "rounds": rounds,
    }
    if args.compare_step:
        body["compare_step"] = compare_step(args)
    common.write_report(args.out, meta, body)


if __name__ == "__main__":
    main()
