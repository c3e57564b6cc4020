"""The demo's transformer against its Zipformer at equal training time on this machine: step
time and MFU of both measured in one run (`benchmarks/train_step.py`), then each trained with
`audiolm_pt.main` as `configs/demo.py` says (the transformer DEMO_STEPS steps, the Zipformer
ZIPFORMER_STEPS: DEMO_STEPS scaled by their examples/s; the report gives the scaled count
this run measured beside it) and evaluated like `benchmarks/demo_levers.py` (probes beside
the log-mel/MFCC baselines, retrieval, zero-shot). Writes
benchmarks/results/encoder_comparison.{json,md} and the step report beside them
(encoder_comparison_steps.json).

    python benchmarks/encoder_comparison.py --root=/tmp/encoders --data_6k=/tmp/d6k/tfds

Runs already evaluated under --root are read, not rerun; --step_json reuses a train_step.py
report of both configs instead of measuring again.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import demo_levers

from configs import demo

RESULTS = Path(__file__).resolve().parent / "results" / "encoder_comparison"
CONFIGS = {"transformer": "demo:contrastive", "zipformer": "demo:contrastive,zipformer"}
RUNS = {"transformer": "voice_captions_6k", "zipformer": "zipformer_6k"}


def _step_report(root: Path, given: str) -> dict:
    if given:
        return json.loads(Path(given).read_text())
    out = root / "train_step.json"
    if not out.exists():
        script = Path(__file__).resolve().parent / "train_step.py"
        configs = ",".join(CONFIGS.values())
        subprocess.run(
            [sys.executable, str(script), f"--configs={configs}", f"--out={out}"], check=True
        )
    return json.loads(out.read_text())


def _training_seconds(workdir: Path) -> float:
    """The run's steps times its median logged step time: training time without compiles
    and evaluations, on the machine as loaded as it was."""
    with open(workdir / "metrics.jsonl", encoding="utf-8") as f:
        logged = [r for r in map(json.loads, f) if "step_time" in r]
    return max(r["step"] for r in logged) * statistics.median(r["step_time"] for r in logged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="run directories go here")
    parser.add_argument("--data_6k", required=True, help="TFDS data_dir of the 6,000-clip corpus")
    parser.add_argument("--step_json", default="", help="a train_step.py report of both configs")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    report = _step_report(root, args.step_json)
    steps = {row["config"]: row for row in report["rows"]}
    speed = {name: steps[config]["examples_per_s"] for name, config in CONFIGS.items()}
    equal_steps = round(demo.DEMO_STEPS * speed["zipformer"] / speed["transformer"])
    rows = []
    for name, run in RUNS.items():
        if demo_levers._row(root, run) is None:
            _, objective, overrides, _ = demo_levers.VARIANTS[run]
            demo_levers._run(root, run, args.data_6k, objective, overrides)
        row = demo_levers._row(root, run)
        step = steps[CONFIGS[name]]
        row.update(
            encoder=name,
            examples_per_s=step["examples_per_s"],
            step_ms=1000.0 / step["steps_per_s"],
            mfu=step["mfu_measured"],
            training_s=_training_seconds(root / run),
        )
        rows.append(row)
    meta = {
        "command": " ".join(sys.argv),
        "load_average": os.getloadavg(),
        "step_report_meta": report["meta"],
        "zipformer_steps_for_equal_time": equal_steps,
        "configured_zipformer_steps": demo.ZIPFORMER_STEPS,
    }
    out = Path(args.out)
    out.with_name(out.name + "_steps.json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    table = demo_levers.markdown(rows)
    speeds = "\n".join(
        f"- {r['encoder']}: {r['step']} steps, {r['examples_per_s']:.1f} examples/s, "
        f"{r['step_ms']:.0f} ms/step, MFU {100 * r['mfu']:.1f}%; in its run "
        f"{r['training_s']:.0f} s of training steps"
        for r in rows
    )
    out.with_suffix(".md").write_text(f"{table}\n{speeds}\n")
    print(table + "\n" + speeds)


if __name__ == "__main__":
    main()
