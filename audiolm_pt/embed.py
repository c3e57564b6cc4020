"""Embeds audio files listed one per line in a text file with a trained run.

    python -m audiolm_pt.embed --workdir=DIR [--step=N] --input=files.txt --output=emb.npy

Rows of `emb.npy` follow the input order; a file that cannot be read gets a NaN row and an
entry in `<output>.errors.json` ({path: error}), and the exit status is 1 when any failed.
"""

import argparse
import json
import logging
import sys

import numpy as np

from audiolm_pt.api import load


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.embed")
    parser.add_argument("--workdir", required=True, help="run directory or checkpoint step")
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--input", required=True, help="text file: one audio path per line")
    parser.add_argument("--output", required=True, help="where to write the .npy embeddings")
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with open(args.input, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    if not paths:
        raise SystemExit(f"{args.input}: no paths listed")
    model = load(args.workdir, args.step, batch_size=args.batch_size)
    embeddings, errors = model.embed_files(paths)
    np.save(args.output, embeddings)
    if errors:
        with open(args.output + ".errors.json", "w", encoding="utf-8") as f:
            json.dump(errors, f, indent=2)
        for path, error in errors.items():
            print(f"error: {path}: {error}", file=sys.stderr)
    print(f"{len(paths) - len(errors)} of {len(paths)} files embedded into {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
