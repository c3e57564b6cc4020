"""The demo evaluation table: a trained run next to two baselines computed by the same
evaluators: the run's config randomly initialised, and per-bin log-mel mean and std fed to
the same probes. Writes benchmarks/results/demo_eval.json with the command that made it.

    python -m audiolm_pt.main --config=configs/demo.py:contrastive --workdir=/tmp/i_demo_full \
        --config.data.data_dir=/tmp/demo_run/tfds
    python -m audiolm_pt.main --config=configs/demo.py:hybrid --workdir=/tmp/i_demo_hybrid \
        --config.data.data_dir=/tmp/demo_run/tfds
    python benchmarks/demo_eval.py --workdir=/tmp/i_demo_full --captioning=/tmp/i_demo_hybrid
"""

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from audiolm_pt.evaluate import registry
from audiolm_pt.evaluate.runner import evaluate_run, write_results
from audiolm_pt.inference.run import load_run

RESULTS = Path(__file__).parent / "results" / "demo_eval.json"
EVALS = ("linear_probe", "zero_shot", "retrieval")
# Zero-shot prompts in the demo captions' tag style (the generic defaults match no caption).
OPTIONS = {"zero_shot": {"templates": ("{}", "music, {}", "{}, music")}}


def _timed(label, fn):
    start = time.perf_counter()
    out = fn()
    print(f"{label}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True, help="the trained contrastive run")
    parser.add_argument("--captioning", default="", help="a trained hybrid/captioning run")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    trained = load_run(args.workdir)
    rows = {
        "trained": _timed("trained", lambda: evaluate_run(trained, EVALS, OPTIONS)),
        "random_init": _timed(
            "random", lambda: evaluate_run(load_run(args.workdir, random_init=True), EVALS, OPTIONS)
        ),
        "logmel_stats": _timed(
            "logmel", lambda: evaluate_run(trained, ("linear_probe",), features="logmel_stats")
        ),
    }
    write_results(trained.workdir, trained.step, rows["trained"])
    if args.captioning:
        hybrid = load_run(args.captioning)
        evals = (*EVALS, "captioning")
        rows["hybrid"] = _timed("hybrid", lambda: evaluate_run(hybrid, evals, OPTIONS))
        write_results(hybrid.workdir, hybrid.step, rows["hybrid"])
    table = {name: registry.scalars(row["results"]) for name, row in rows.items()}
    out = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "runs": {"trained": args.workdir, "captioning": args.captioning},
        "options": OPTIONS,
        "machine": {"python": platform.python_version(), "processor": platform.processor()},
        "table": table,
        "details": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
