"""Command line: build a TFDS/ArrayRecord dataset from a local audio–caption corpus.

    python -m audiolm_pt.data.builders --format=demo --source_dir=/tmp/demo1k --data_dir=DIR \
        [--name=demo] [--max_seconds=30] [--long_clip_policy=window|truncate] \
        [--frontend=fbank|log_mel] [--frontend_options='{"n_mels": 80}'] \
        [--store_waveform] [--no_features] [--workers=2] [--splits=train,test] [--overwrite]
"""

import argparse
import json
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.data.builders")
    parser.add_argument("--format", default="demo", help="demo|audiocaps|clotho|wavcaps|lhotse")
    parser.add_argument("--source_dir", required=True, help="the corpus, in its native layout")
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir to write into")
    parser.add_argument("--name", default=None, help="dataset name (default: the format)")
    parser.add_argument("--max_seconds", type=float, default=30.0)
    parser.add_argument("--long_clip_policy", default="window", help="window|truncate")
    parser.add_argument("--frontend", default="fbank", help="fbank|log_mel: stored features")
    parser.add_argument(
        "--frontend_options",
        default="{}",
        help="JSON object of FbankConfig or LogMelConfig fields for the chosen front end",
    )
    parser.add_argument("--store_waveform", action="store_true", help="also store FLAC audio")
    parser.add_argument(
        "--no_features",
        action="store_true",
        help="store no features (needs --store_waveform; the pipeline computes them)",
    )
    parser.add_argument("--workers", type=int, default=1, help="feature-extraction processes")
    parser.add_argument("--caption_style", default=None, help="style tag of external captions")
    parser.add_argument(
        "--audio_pattern",
        action="append",
        default=None,
        help="audio path pattern (audiocaps, wavcaps); repeat to try several in order",
    )
    parser.add_argument("--splits", default=None, help="comma-separated (default: all found)")
    parser.add_argument("--max_report_ids", type=int, default=10)
    parser.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # Imported here so that --help and bad arguments answer without loading TensorFlow.
    from audiolm_pt.data.builders.tfds_builder import build_dataset

    try:
        frontend = _frontend_options(args.frontend, args.frontend_options)
        builder = build_dataset(
            args.source_dir,
            args.data_dir,
            format=args.format,
            overwrite=args.overwrite,
            name=args.name,
            max_seconds=args.max_seconds,
            long_clip_policy=args.long_clip_policy,
            store_waveform=args.store_waveform,
            store_features=not args.no_features,
            **frontend,
            workers=args.workers,
            caption_style=args.caption_style,
            audio_patterns=args.audio_pattern,
            splits=args.splits.split(",") if args.splits else None,
            max_report_ids=args.max_report_ids,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    print(f"dataset at {builder.data_path}")


def _frontend_options(name: str, text: str) -> dict:
    """``frontend`` and the config of the named front end from ``--frontend_options``."""
    from audiolm_pt import strict_config
    from audiolm_pt.audio.frontend import CONFIG_TYPES

    if name not in CONFIG_TYPES:
        raise ValueError(f"build option frontend={name!r}: must be one of {sorted(CONFIG_TYPES)}")
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"build option frontend_options: not JSON ({error})") from error
    if not isinstance(values, dict):
        raise ValueError("build option frontend_options: must be a JSON object")
    return {"frontend": name, name: strict_config.from_dict(CONFIG_TYPES[name], values, name)}


if __name__ == "__main__":
    main()
