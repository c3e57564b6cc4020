"""Evaluates a saved run from the command line.

    python -m audiolm_pt.evaluate --workdir=DIR [--step=N] [--evals=linear_probe,zero_shot]
        [--options='{"zero_shot": {"tasks": ["instrument_family"]}}'] [--data_dir=TFDS_DIR]
        [--baseline=random|logmel_stats|mfcc_stats --output=FILE.json] [--summary=FILE.txt]

Without `--baseline` the results go to DIR/eval/<step>.json and the run's metrics; with
`--limit` or another `--dataset` they are a variant, filed as DIR/eval/<step>.<variant>.json
(e.g. `1200.limit40.json`) and `eval@<variant>/` metrics, never over the full evaluation; a
baseline (the run's config randomly initialised, or log-mel or MFCC statistics fed to the same
probes) is written only to `--output`. The numbers go to stdout as JSON; a summary table (each
probe beside its hand-crafted baselines, retrieval, zero-shot) goes to stderr and `--summary`,
after one progress line per evaluator (and per linear-probe task); `--verbose` adds the
libraries' INFO lines.
"""

import argparse
import json
import logging
import sys

from audiolm_pt import console  # noqa: F401  (first: imports TensorFlow without its INFO lines)
from audiolm_pt.data import pipeline
from audiolm_pt.eval_summary import format_summary
from audiolm_pt.evaluate import handcrafted, registry
from audiolm_pt.evaluate.context import DataSpec
from audiolm_pt.evaluate.runner import DEFAULT_EVALS, evaluate_run, write_results
from audiolm_pt.inference.run import load_run

BASELINES = ("random", *handcrafted.BASELINES)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.evaluate")
    parser.add_argument("--workdir", required=True, help="run directory or checkpoint step")
    parser.add_argument("--step", type=int, default=None, help="saved step (default: newest)")
    parser.add_argument("--evals", default=",".join(DEFAULT_EVALS), help=f"of {registry.names()}")
    parser.add_argument("--options", default="{}", help="JSON {evaluator: {option: value}}")
    parser.add_argument("--data_dir", default=None, help="TFDS data_dir (default: the run's)")
    parser.add_argument("--dataset", default=None, help="TFDS name (default: the run's first)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips a split")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--baseline", choices=BASELINES, default=None)
    parser.add_argument("--output", default=None, help="also write the results here (JSON)")
    parser.add_argument("--summary", default=None, help="also write the summary table here")
    parser.add_argument("--verbose", action="store_true", help="the libraries' INFO lines too")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", force=True)
    logging.getLogger("audiolm_pt").setLevel(logging.INFO)
    evals = [e for e in args.evals.split(",") if e]
    for name in evals:
        registry.get(name)
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--options: not JSON ({err})") from None
    if not isinstance(options, dict):
        raise SystemExit('--options: must be a JSON object {"evaluator": {"option": value}}')
    if args.baseline and not args.output:
        raise SystemExit("--baseline needs --output (baselines are not written into the run)")
    run = load_run(args.workdir, args.step, random_init=args.baseline == "random")
    data = DataSpec.from_config(
        run.config, name=args.dataset, data_dir=args.data_dir, limit=args.limit
    )
    features = args.baseline if args.baseline in handcrafted.BASELINES else "model"
    try:
        results = evaluate_run(
            run, evals, options, data=data, features=features, batch_size=args.batch_size
        )
    except pipeline.DatasetNotFoundError as err:
        raise SystemExit(f"data error: {err}") from None
    if args.baseline is None:
        write_results(run.workdir, run.step, results)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, sort_keys=True)
    json.dump(registry.scalars(results["results"]), sys.stdout, indent=1, sort_keys=True)
    print()
    summary = format_summary(results["results"])
    print(summary, file=sys.stderr)
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as f:
            f.write(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
