"""Builds the demo corpus: plans clips, generates fixed chunks in parallel, streams the manifest.

Clip ``i`` draws everything from ``numpy.random.default_rng([seed, i])`` and chunks are fixed
ranges of clip indices, so the manifest and audio bytes depend on ``seed``, ``num_clips``,
``chunk_size`` and the mixes, never on ``workers``. Rows are written in clip order as chunks
finish; the corpus is never held in memory.
"""

import argparse
import collections
import json
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from audiolm_pt.data.demo_corpus import clips, events, levels, mixtures, music, speech
from audiolm_pt.data.demo_corpus.errors import ClipError
from audiolm_pt.data.demo_corpus.splits import SPLITS

VERSION = "1.1.0"
DOMAINS = ("speech", "music", "sound", "mixture")
RECIPES = {
    "speech": (clips.draw_speech, clips.finish_speech),
    "music": (clips.draw_music, clips.finish_music),
    "sound": (clips.draw_sound, clips.finish_sound),
    "mixture": (mixtures.draw_mixture, mixtures.finish_mixture),
}


def plan_clip(seed: int, index: int, config: dict) -> tuple[str, str, np.random.Generator]:
    """(domain, split, generator) of clip ``index``."""
    rng = np.random.default_rng([seed, index])
    domain = DOMAINS[rng.choice(len(DOMAINS), p=config["domain_mix"])]
    split = SPLITS[rng.choice(len(SPLITS), p=config["split_fractions"])]
    return domain, split, rng


def build_chunk(
    out_dir: str, seed: int, first: int, last: int, config: dict
) -> tuple[list[dict], collections.Counter]:
    """Generates clips ``first..last-1``, writes their audio, returns manifest rows and skips."""
    skipped = collections.Counter()
    drawn = []
    for index in range(first, last):
        domain, split, rng = plan_clip(seed, index, config)
        try:
            drawn.append((index, domain, split, rng, RECIPES[domain][0](rng, split, config)))
        except ClipError as error:
            skipped[error.reason] += 1
    specs = [record["music"] for *_, record in drawn if "music" in record]
    try:
        rendered = iter(music.render(specs, config["sample_rate"]))
    except ClipError as error:
        skipped[error.reason] += len(specs)
        drawn = [item for item in drawn if "music" not in item[-1]]
    rows = []
    for index, domain, split, rng, record in drawn:
        music_audio = next(rendered) if "music" in record else None
        try:
            audio, texts, labels, provenance = RECIPES[domain][1](rng, record, music_audio)
            pcm = levels.finish(audio, config["sample_rate"])
        except ClipError as error:
            skipped[error.reason] += 1
            continue
        clip_id = f"demo{seed}-{index:07d}"
        relative = f"audio/{split}/{clip_id}.flac"
        sf.write(
            Path(out_dir, relative), pcm, config["sample_rate"], format="FLAC", subtype="PCM_16"
        )
        rows.append(
            {
                "id": clip_id,
                "split": split,
                "audio": relative,
                "domain": domain,
                "duration": round(len(pcm) / config["sample_rate"], 6),
                "sample_rate": config["sample_rate"],
                "captions": texts,
                "labels": {"domain": domain, **labels},
                "provenance": provenance,
            }
        )
    return rows, skipped


def _build_chunk_star(args: tuple) -> tuple[list[dict], collections.Counter]:
    return build_chunk(*args)


def _weights(text: str, names: tuple[str, ...], key: str) -> list[float]:
    try:
        pairs = dict(item.split("=") for item in text.split(","))
        values = {name: float(value) for name, value in pairs.items()}
    except ValueError as error:
        raise SystemExit(f"--{key}: expected name=weight,..., got {text!r}") from error
    unknown = set(values) - set(names)
    if unknown or any(v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise SystemExit(
            f"--{key}: names must be among {names}, weights >= 0, sum > 0; got {text!r}"
        )
    total = sum(values.values())
    return [values.get(name, 0.0) / total for name in names]


def check_config(args: argparse.Namespace) -> dict:
    """Validates the command line; exits with a message naming the bad key."""
    for key, low, high in (
        ("num_clips", 1, None),
        ("workers", 1, 256),
        ("chunk_size", 1, None),
        ("sample_rate", 8000, 48000),
        ("seed", 0, None),
    ):
        value = getattr(args, key)
        if value < low or (high is not None and value > high):
            raise SystemExit(f"--{key}={value} is out of range [{low}, {high or 'inf'}]")
    config = {
        "sample_rate": args.sample_rate,
        "domain_mix": _weights(args.domain_mix, DOMAINS, "domain_mix"),
        "split_fractions": tuple(_weights(args.split_fractions, SPLITS, "split_fractions")),
    }
    mix = dict(zip(DOMAINS, config["domain_mix"], strict=True))
    needs = {
        speech.ESPEAK: mix["speech"] + mix["mixture"],
        music.FLUIDSYNTH: mix["music"] + mix["mixture"],
    }
    for tool, weight in needs.items():
        if weight > 0 and shutil.which(tool) is None:
            raise SystemExit(f"--domain_mix needs {tool}, which is not installed")
    if mix["music"] + mix["mixture"] > 0 and not Path(music.SOUNDFONT).is_file():
        raise SystemExit(f"--domain_mix needs the soundfont {music.SOUNDFONT}")
    if mix["sound"] + mix["mixture"] > 0 and not events.sample_splits():
        raise SystemExit(f"--domain_mix needs sonic-pi samples in {events.SAMPLES_DIR}")
    return config


def _label_counts(rows: list[dict], counts: dict) -> None:
    for row in rows:
        counts["split"][row["split"]] += 1
        counts["domain"][row["domain"]] += 1
        counts["split_domain"][f"{row['split']}/{row['domain']}"] += 1
        for task, value in row["labels"].items():
            for label in value if isinstance(value, list) else [value]:
                counts["labels"].setdefault(task, collections.Counter())[label] += 1


def build(
    out_dir: str, num_clips: int, seed: int, workers: int, chunk_size: int, config: dict
) -> dict:
    """Writes the corpus under ``out_dir`` and returns the contents of corpus_info.json."""
    out = Path(out_dir)
    try:
        playable = music.probe_playable(config["sample_rate"])
    except ClipError:
        playable = ()  # every music clip is then skipped and counted
    config = {**config, "playable": playable}
    for split in SPLITS:
        (out / "audio" / split).mkdir(parents=True, exist_ok=True)
    tasks = [
        (str(out), seed, first, min(first + chunk_size, num_clips), config)
        for first in range(0, num_clips, chunk_size)
    ]
    counts = {
        "split": collections.Counter(),
        "domain": collections.Counter(),
        "split_domain": collections.Counter(),
        "labels": {},
    }
    skipped, seconds, written = collections.Counter(), 0.0, 0
    start = time.perf_counter()
    with (
        open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest,
        tqdm(total=num_clips, unit="clip", desc="demo corpus") as progress,
    ):
        if workers == 1:
            results = map(_build_chunk_star, tasks)
        else:
            pool = multiprocessing.get_context("spawn").Pool(workers)
            results = pool.imap(_build_chunk_star, tasks)
        for (rows, chunk_skipped), task in zip(results, tasks, strict=True):
            for row in rows:
                manifest.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                seconds += row["duration"]
            written += len(rows)
            skipped.update(chunk_skipped)
            _label_counts(rows, counts)
            progress.update(task[3] - task[2])
        if workers > 1:
            pool.close()
            pool.join()
    elapsed = time.perf_counter() - start
    info = {
        "version": VERSION,
        "seed": seed,
        "num_clips_requested": num_clips,
        "num_clips": written,
        "hours": round(seconds / 3600, 4),
        "sample_rate": config["sample_rate"],
        "chunk_size": chunk_size,
        "workers": workers,
        "domain_mix": {d: round(w, 6) for d, w in zip(DOMAINS, config["domain_mix"], strict=True)},
        "split_fractions": {
            s: round(f, 6) for s, f in zip(SPLITS, config["split_fractions"], strict=True)
        },
        "playable_instruments": len({program for program, _ in playable}),
        "counts": {
            key: dict(sorted(value.items())) for key, value in counts.items() if key != "labels"
        },
        "label_counts": {
            task: dict(sorted(c.items())) for task, c in sorted(counts["labels"].items())
        },
        "skipped": dict(sorted(skipped.items())),
        "elapsed_seconds": round(elapsed, 2),
        "clips_per_second": round(written / elapsed, 3),
    }
    (out / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m audiolm_pt.data.demo_corpus", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--num_clips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument(
        "--chunk_size",
        type=int,
        default=64,
        help="clips per work unit (and per fluidsynth call); part of the recipe",
    )
    parser.add_argument("--domain_mix", default="speech=0.35,music=0.30,sound=0.20,mixture=0.15")
    parser.add_argument("--split_fractions", default="train=0.8,valid=0.1,test=0.1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = check_config(args)
    info = build(args.out, args.num_clips, args.seed, args.workers, args.chunk_size, config)
    print(
        json.dumps(
            {key: info[key] for key in ("num_clips", "hours", "skipped", "clips_per_second")}
        )
    )
    return info
