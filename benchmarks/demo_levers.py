"""What each lever of the demo recipe buys: every variant trained with `audiolm_pt.main` and
evaluated with the demo's evaluation (`configs/demo.py:eval_options`: mean, mean+std and
per-stage mean+std probes beside the log-mel and MFCC baselines, retrieval, zero-shot with
unseen prompt wording), one row per variant, written to notebooks/results/demo_levers.{json,md}.

    for n in 2 6; do  # the 2,000- and 6,000-clip corpora
      python -m audiolm_pt.data.demo_corpus --out=/tmp/d${n}k/corpus --num_clips=${n}000 --seed=0
      python -m audiolm_pt.data.builders --format=demo --source_dir=/tmp/d${n}k/corpus \
          --data_dir=/tmp/d${n}k/tfds
    done
    python benchmarks/demo_levers.py --root=/tmp/levers --data_2k=/tmp/d2k/tfds \
        --data_6k=/tmp/d6k/tfds [--only=name,...]

Variants already evaluated under --root are read, not rerun (`--table_only` never trains).
Rows of the table at --out that this call does not measure are kept as they were. Each row
records the command that trained it, and each step's seconds and the load average as it ended.
Each variant states its differences from the demo config of this commit; the corpus builder's
own changes (its version) are not overrides, so a variant measured on an earlier corpus version
(see notebooks/results/demo_levers.md) is reproduced on the current one.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs import demo

RESULTS = Path(__file__).resolve().parents[1] / "notebooks" / "results"
TASKS = ("language", "voice", "speed", "instrument_family", "tempo")
# The recipe before token dropout: every token, SpecAugment (2 time and 2 frequency masks),
# 2,400 steps. Rows measured before it changed start from it; their own overrides come after
# it, and the last value of a flag wins.
SPEC = ("--config.data.pipeline.time_masks=2", "--config.data.pipeline.freq_masks=2")
NO_SPEC = ("--config.data.pipeline.time_masks=0", "--config.data.pipeline.freq_masks=0")
BEFORE_DROPOUT = ("--config.model.audio.token_keep=1.0", *SPEC, "--config.train.num_steps=2400")
NO_NORM = ("--config.model.audio.input_mean=0", "--config.model.audio.input_std=1")
FIRST = ("--config.optimizer.learning_rate=1e-3", "--config.train.num_steps=1200")
RANDOM_TEXT = (
    "--config.model.text.init_from=",
    "--config.model.text.locked=False",
    f"--config.data.pipeline.tokenizer={demo.DEMO_TOKENIZER}",
)
WIDE = (
    "--config.model.audio.transformer.width=128",
    "--config.model.audio.transformer.depth=4",
    "--config.model.audio.transformer.mlp_dim=512",
    "--config.model.audio.conv_channels=16",
    "--config.model.heads.joint_dim=128",
)
# name: (corpus, objective, overrides of this commit's demo config, what the row changes), in
# the order they were tried; each row adds to the best recipe so far unless it says otherwise.
VARIANTS = {
    "random_text_2k": ("2k", "contrastive", (*BEFORE_DROPOUT, *RANDOM_TEXT, *NO_NORM, *FIRST),
                       "before: random-init text tower, 2,000 clips, lr 1e-3, 1,200 steps"),
    "minilm_2k": ("2k", "contrastive", (*BEFORE_DROPOUT, *NO_NORM, *FIRST),
                  "+ all-MiniLM-L6-v2, locked"),
    "minilm_wide_2k": ("2k", "contrastive", (*BEFORE_DROPOUT, *NO_NORM, *FIRST, *WIDE),
                       "+ audio width 128, depth 4"),
    "minilm_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, *NO_NORM, *FIRST),
                  "MiniLM, 6,000 clips (width 64)"),
    "batch128_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, *NO_NORM, *FIRST,
                    "--config.data.pipeline.global_batch_size=128", "--config.train.num_steps=400",
                    "--config.optimizer.warmup_steps=30"), "+ batch 128, 400 steps"),
    "norm_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, *FIRST), "+ input standardisation"),
    "norm_wide_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, *FIRST, *WIDE),
                     "+ input standardisation, width 128"),
    "lr3e-3_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, "--config.train.num_steps=1200"),
                  "+ lr 3e-3"),
    "hybrid_6k": ("6k", "hybrid", (*BEFORE_DROPOUT, "--config.train.num_steps=1200"),
                  "hybrid objective (+ captioning)"),
    "patch_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, "--config.train.num_steps=1200",
                 "--config.model.audio.frontend=patch", "--config.model.audio.patch_time=4",
                 "--config.model.audio.patch_freq=80"), "patch (4 frames x 80 bins) front end"),
    "steps2400_6k": ("6k", "contrastive", BEFORE_DROPOUT, "+ 2,400 steps"),
    "voice_captions_6k": ("6k", "contrastive", BEFORE_DROPOUT,
                          "+ voice qualities in speech captions (corpus 1.1.0): the demo"),
    "no_specaugment_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, *NO_SPEC),
                          "without SpecAugment"),
    "mixup_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, "--config.data.pipeline.mixup_prob=0.3"),
                 "+ mixup (p 0.3, dominant clip's caption)"),
    "zipformer_6k": ("6k", "contrastive,zipformer", SPEC,
                     "the demo-size Zipformer audio encoder, for the demo's training time"),
    # Steps: 2,400 x examples/s over keep 1.0's (benchmarks/results/token_keep_step.json).
    "keep75_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, "--config.model.audio.token_keep=0.75",
                  "--config.train.num_steps=2767"),
                  "token dropout keeping 75% of the audio tokens, for the demo's training time"),
    "keep50_6k": ("6k", "contrastive", (*BEFORE_DROPOUT, "--config.model.audio.token_keep=0.5",
                  "--config.train.num_steps=3711"),
                  "token dropout keeping 50% of the audio tokens, for the demo's training time"),
    "untrained_6k": ("6k", "contrastive", ("--config.optimizer.learning_rate=1e-9",
                     "--config.optimizer.warmup_steps=0", "--config.train.num_steps=1"),
                     "control: the demo's initialisation (one step at learning rate 1e-9)"),
    # From here on the demo config's own recipe: keep 0.5, no SpecAugment.
    "keep50_nospec_6k": ("6k", "contrastive", ("--config.train.num_steps=3711",),
                         "token dropout keeping 50%, without SpecAugment, 3,711 steps: the demo"),
    "keep50_nospec_4400_6k": ("6k", "contrastive", ("--config.train.num_steps=4400",),
                              "+ 4,400 steps (the demo took 20:06 end to end)"),
    "mixup_keep50_6k": ("6k", "contrastive", ("--config.data.pipeline.mixup_prob=0.3",),
                        "the demo + mixup (p 0.3, dominant clip's caption)"),
}  # fmt: skip


def _run(root: Path, name: str, data_dir: str, objective: str, overrides: tuple) -> None:
    workdir = root / name
    python = sys.executable
    train = [python, "-m", "audiolm_pt.main", f"--config=configs/demo.py:{objective}",
             f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
             f"--config.train.text_cache_dir={root / 'text_cache'}", *overrides]  # fmt: skip
    evaluate = [python, "-m", "audiolm_pt.evaluate", f"--workdir={workdir}",
                "--evals=linear_probe,retrieval,zero_shot",
                f"--options={demo.eval_options()}"]  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    measured = {"command": " ".join(sys.argv)}
    for command in (train, evaluate):
        start = time.perf_counter()
        with open(root / f"{name}.log", "a", encoding="utf-8") as log:
            subprocess.run(command, check=True, cwd=repo, stdout=log, stderr=log)
        seconds = time.perf_counter() - start
        # The 1/5/15-minute load averages as the command ends.
        measured[command[2]] = {"seconds": round(seconds), "load_average": os.getloadavg()}
        print(f"{name}: {command[2]} {seconds:.0f} s", flush=True)
    (root / f"{name}.measured.json").write_text(json.dumps(measured, indent=1) + "\n")


def _row(root: Path, name: str) -> dict | None:
    evals = sorted(
        (p for p in (root / name / "eval").glob("[0-9]*.json") if p.stem.isdigit()),
        key=lambda p: int(p.stem),
    )
    if not evals:
        return None
    results = json.loads(evals[-1].read_text())["results"]
    probes = results["linear_probe"]
    row = {"variant": name, "step": int(evals[-1].stem), "what": VARIANTS[name][3]}
    measured = root / f"{name}.measured.json"
    if measured.exists():
        row["measured"] = json.loads(measured.read_text())
    for task in TASKS:
        scores = probes[task]["mean_std"]
        row[task] = scores["test"]
        row[f"{task} baseline"] = max(b["test"] for b in scores["baselines"].values())
    row["mean gain"] = sum(row[t] - row[f"{t} baseline"] for t in TASKS) / len(TASKS)
    if all("test" in probes[t].get("stages", {}) for t in TASKS):
        for task in TASKS:
            row[f"{task} stages"] = probes[task]["stages"]["test"]
        row["mean gain, stages"] = sum(probes[t]["stages"]["gain"] for t in TASKS) / len(TASKS)
    if "retrieval" in results:
        row["R@1 a2t"] = results["retrieval"]["audio_to_text"]["R@1"]
        row["R@1 t2a"] = results["retrieval"]["text_to_audio"]["R@1"]
    for task in ("language", "instrument_family"):
        zero = results.get("zero_shot", {}).get(task, {})
        if "accuracy" in zero:
            row[f"zero-shot {task} x chance"] = zero["accuracy"] * zero["num_classes"]
    return row


def _saved_rows(path: Path) -> list[dict]:
    """Rows of an earlier table (the file-wide `meta` of older tables, the command that wrote
    them and the load then, is copied into rows that lack their own `measured`)."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    return [{"measured": saved.get("meta", {}), **r} for r in saved["rows"]]


def _table(rows: list[dict], columns: list[str], pooling: str) -> list[str]:
    """Markdown lines; a task's cell is its probe (by `pooling`: "" or " stages") with the
    better baseline in brackets."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            if c in TASKS:
                v = f"{row[c + pooling]:.2f} ({row[c + ' baseline']:.2f})"
            elif isinstance(v, float):
                v = f"{v:+.3f}" if c.startswith("mean gain") else f"{v:.3f}"
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[dict]) -> str:
    """The table of every row (mean+std probes), then the per-stage probes of rows with them."""
    columns = ["variant", "what", *TASKS, "mean gain", "mean gain, stages", "R@1 a2t", "R@1 t2a",
               "zero-shot language x chance", "zero-shot instrument_family x chance"]  # fmt: skip
    lines = _table(rows, columns, "")
    staged = [r for r in rows if "mean gain, stages" in r]
    if staged:
        lines += ["", "Per-stage mean+std probes (`stages` pooling), same baselines:", ""]
        lines += _table(staged, ["variant", *TASKS, "mean gain, stages"], " stages")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="run directories go here")
    parser.add_argument("--data_2k", default="", help="TFDS data_dir of the 2,000-clip corpus")
    parser.add_argument("--data_6k", default="", help="TFDS data_dir of the 6,000-clip corpus")
    parser.add_argument("--only", default="", help="comma-separated variants (default all)")
    parser.add_argument("--table_only", action="store_true", help="read results, train nothing")
    parser.add_argument("--out", default=str(RESULTS / "demo_levers"))
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    for name in names:
        if name not in VARIANTS:
            raise SystemExit(f"--only: unknown variant {name!r}; known: {list(VARIANTS)}")
        corpus, objective, overrides, _ = VARIANTS[name]
        data_dir = {"2k": args.data_2k, "6k": args.data_6k}[corpus]
        if _row(root, name) is None and not args.table_only:
            if not data_dir:
                raise SystemExit(f"variant {name} needs --data_{corpus}")
            _run(root, name, data_dir, objective, overrides)
    rows = {r["variant"]: r for r in _saved_rows(Path(f"{args.out}.json"))}
    for name in names:
        row = _row(root, name)
        if row is not None:
            rows[name] = row
    rows = [rows[n] for n in VARIANTS if n in rows]
    Path(f"{args.out}.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    Path(f"{args.out}.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
