"""Embeds audio files listed one per line in a text file with a trained run.

    python -m audiolm_pt.embed --workdir=DIR [--step=N] --input=files.txt --output=emb.npy

Rows of `emb.npy` follow the input order; a file that cannot be read gets a NaN row and an
entry in `<output>.errors.json` ({path: error}), and the exit status is 1 when any failed.
The output directory is checked before any work; files are written atomically, and an errors
file left by an earlier run is removed when this one has none.
"""

import argparse
import json
import logging
import os
import sys
import tempfile

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
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise SystemExit(f"--output={args.output}: {out_dir} is not a writable directory")
    with open(args.input, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    if not paths:
        raise SystemExit(f"{args.input}: no paths listed")
    model = load(args.workdir, args.step, batch_size=args.batch_size)
    embeddings, errors = model.embed_files(paths)
    write_outputs(args.output, embeddings, errors)
    for path, error in errors.items():
        print(f"error: {path}: {error}", file=sys.stderr)
    print(f"{len(paths) - len(errors)} of {len(paths)} files embedded into {args.output}")
    return 1 if errors else 0


def write_outputs(output: str, embeddings: np.ndarray, errors: dict[str, str]) -> None:
    """`output` (.npy) and, when any file failed, `output.errors.json`, each written whole or
    not at all; a stale errors file is removed."""
    _atomic(output, lambda f: np.save(f, embeddings))
    errors_path = output + ".errors.json"
    if errors:
        _atomic(errors_path, lambda f: f.write(json.dumps(errors, indent=2).encode()))
    elif os.path.exists(errors_path):
        os.remove(errors_path)


def _atomic(path: str, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
