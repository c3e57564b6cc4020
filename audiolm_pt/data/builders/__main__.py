"""Command line: build a TFDS/ArrayRecord dataset from a local audio–caption corpus.

    python -m audiolm_pt.data.builders --format=demo --source_dir=/tmp/demo1k --data_dir=DIR \
        [--name=demo] [--max_seconds=30] [--long_clip_policy=window|truncate] \
        [--store_waveform] [--workers=2] [--splits=train,test] [--overwrite]
"""

import argparse
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.data.builders")
    parser.add_argument("--format", default="demo", help="demo|audiocaps|clotho|wavcaps|lhotse")
    parser.add_argument("--source_dir", required=True, help="the corpus, in its native layout")
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir to write into")
    parser.add_argument("--name", default=None, help="dataset name (default: the format)")
    parser.add_argument("--max_seconds", type=float, default=30.0)
    parser.add_argument("--long_clip_policy", default="window", help="window|truncate")
    parser.add_argument("--store_waveform", action="store_true", help="also store int16 audio")
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
        builder = build_dataset(
            args.source_dir,
            args.data_dir,
            format=args.format,
            overwrite=args.overwrite,
            name=args.name,
            max_seconds=args.max_seconds,
            long_clip_policy=args.long_clip_policy,
            store_waveform=args.store_waveform,
            workers=args.workers,
            caption_style=args.caption_style,
            audio_patterns=args.audio_pattern,
            splits=args.splits.split(",") if args.splits else None,
            max_report_ids=args.max_report_ids,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    print(f"dataset at {builder.data_path}")


if __name__ == "__main__":
    main()
