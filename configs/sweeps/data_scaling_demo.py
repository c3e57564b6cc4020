"""The demo-scale data-scaling study: contrastive, captioning and hybrid pretraining, and
contrastive pretraining initialised from a supervised tagging run, each on nested subsets
(2%, 10%, 100%) of the demo corpus's training split, with three seeds per point (a tagging
run per seed); every arm uses the demo recipe (`configs/demo.py`: its tiny model, batch,
learning rate, token dropout and augmentation) for the same number of steps, and every run is
then evaluated (linear probe, zero-shot, retrieval for models with a text encoder, captioning
for models with a decoder). The fractions span 50x so that the smallest subset, seen for about
70 epochs in STEPS steps, limits learning by its data and not by the steps.

    # 1. the demo corpus (6,000 clips) and its TFDS build
    python -m audiolm_pt.data.demo_corpus --out=study_out/corpus --num_clips=6000 --seed=0
    python -m audiolm_pt.data.builders --format=demo --source_dir=study_out/corpus \
        --data_dir=study_out/tfds
    # 2. the sweep; run it again to go on after an interruption (failed points are retried)
    python -m audiolm_pt.sweep --sweep=configs/sweeps/data_scaling_demo.py --root=study_out/runs
    # 3. one tidy table of every run's training, held-out and evaluation metrics
    python -m audiolm_pt.collect --root=study_out/runs --csv

The arg is "key=value,..." with keys steps (default STEPS), fractions and seeds
("+"-separated, default FRACTIONS and SEEDS) and data_dir (default
$AUDIOLM_PT_STUDY_DATA_DIR, else study_out/tfds), e.g. `:steps=300,fractions=0.1+1.0`. The
tagging runs train on the full training split with the labels of TAG_TASKS; its vocabulary is
read from that split, so the TFDS build must exist before the sweep starts.
"""

import os

from audiolm_pt.sweep import SweepError, grid, parse_arg
from configs import demo

# Sized so that the 39 runs take at most 90 minutes on 2 cores, evaluation included
# (notebooks/results/README.md has the measured time).
STEPS = 200
FRACTIONS = (0.02, 0.1, 1.0)
SEEDS = (0, 1, 2)
SIZE = "tiny"  # the model preset of every point (configs/demo.py:<objective>,tiny)
TAG_TASKS = "language,voice,instrument_family,event_category"
ARMS = {  # arm: (objective, init)
    "contrastive": ("contrastive", "scratch"),
    "captioning": ("captioning", "scratch"),
    "hybrid": ("hybrid", "scratch"),
    "contrastive_tagging_init": ("contrastive", "tagging"),
}
# What a tagging run takes from configs/demo.py so that it trains the same encoder on the
# same data as the other arms (and its encoder can initialise them).
DEMO_KEYS = (
    "model.audio.max_frames",
    "model.audio.input_mean",
    "model.audio.input_std",
    "model.audio.token_keep",
    "optimizer.learning_rate",
    "train.log_every",
    "checkpoint.every_steps",
    "checkpoint.keep_every",
    "data.tfds_names",
    "data.eval_split",
    "data.pipeline.global_batch_size",
    "data.pipeline.max_frames",
    "data.pipeline.num_workers",
    "data.pipeline.time_masks",
    "data.pipeline.freq_masks",
    "data.pipeline.mixup_prob",
)
# Evaluation kept to about a minute per run on 2 cores: mean+std-pooled linear probes with a
# two-value C grid and no baselines, trained on at most 1,600 clips (the `--limit` on every
# split, which leaves the 6,000-clip corpus's 600-clip valid and test splits whole); greedy captions
# without METEOR; zero-shot prompts that are the bare class name (the demo's tag-style
# captions name classes that way, and one prompt keeps likelihood scoring cheap).
PROBE = {"poolings": ["mean_std"], "c_grid": [0.1, 1.0], "baselines": []}
ZERO_SHOT = {"templates": ["{}"]}
CAPTIONS = {"beams": [1], "meteor": False}
EVAL_FLAGS = {"limit": 1600}


def get_sweep(arg: str | None = None) -> dict:
    values = parse_arg(
        arg,
        {
            "steps": STEPS,
            "fractions": FRACTIONS,
            "seeds": SEEDS,
            "data_dir": os.environ.get("AUDIOLM_PT_STUDY_DATA_DIR", "study_out/tfds"),
        },
    )
    base = demo.get_config(f"contrastive,{SIZE}")
    steps = values["steps"]
    vocab = _tag_vocab(values["data_dir"])

    def shared(seed: int) -> dict:
        return {
            "seed": seed,
            "train.num_steps": steps,
            "optimizer.warmup_steps": min(base.optimizer.warmup_steps, steps // 10),
            "data.data_dir": values["data_dir"],
            "data.pipeline.seed": seed,
            # Every run's locked text tower reads one cache (files are keyed by tower).
            "train.text_cache_dir": "{root}/text_cache",
        }

    def tagging(seed: int) -> dict:
        return {
            "name": f"tagging_s{seed}",
            "config": f"configs/tagging.py:{SIZE}",
            "overrides": {
                **{key: _get(base, key) for key in DEMO_KEYS},
                **{k: v for k, v in shared(seed).items() if k != "train.text_cache_dir"},
                "data.pipeline.label_task": TAG_TASKS,
                "data.pipeline.label_vocab": vocab,
                "model.heads.num_labels": len(vocab),
            },
            "tags": {**_tags("tagging", 1.0, "tagging", "scratch"), "seed": seed},
            "evals": ["linear_probe"],
            "eval_options": {"linear_probe": PROBE},
            "eval_flags": EVAL_FLAGS,
        }

    def point(v: dict) -> dict:
        objective, init = ARMS[v["arm"]]
        overrides = {
            **shared(v["seed"]),
            "data.pipeline.data_fraction": v["data_fraction"],
            "evals.heldout_loss.every_steps": max(1, steps // 4),
        }
        after = []
        if init == "tagging":
            overrides["checkpoint.init_from"] = f"{{point_dir:tagging_s{v['seed']}}}/checkpoints"
            overrides["checkpoint.init_mode"] = "encoder"
            after = [f"tagging_s{v['seed']}"]
        evals = ["linear_probe", "zero_shot"]
        options = {"linear_probe": PROBE, "zero_shot": ZERO_SHOT}
        if objective != "captioning":  # retrieval needs a text encoder
            evals.append("retrieval")
        if objective != "contrastive":
            evals.append("captioning")
            options["captioning"] = CAPTIONS
        return {
            "name": f"{v['arm']}_f{v['data_fraction']:g}_s{v['seed']}",
            "config": f"configs/demo.py:{objective},{SIZE}",
            "overrides": overrides,
            "tags": _tags(v["arm"], v["data_fraction"], objective, init),
            "after": after,
            "evals": evals,
            "eval_options": options,
            "eval_flags": EVAL_FLAGS,
        }

    axes = {"seed": values["seeds"], "data_fraction": values["fractions"], "arm": list(ARMS)}
    taggings = [tagging(seed) for seed in values["seeds"]]
    return {"name": "data_scaling_demo", "points": [*taggings, *grid(axes, point)]}


def _tags(arm: str, fraction: float, objective: str, init: str) -> dict:
    return {
        "arm": arm,
        "objective": objective,
        "data_fraction": fraction,
        "init": init,
        "model_size": SIZE,
    }


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _tag_vocab(data_dir: str) -> tuple[str, ...]:
    from audiolm_pt.data import pipeline

    try:
        source = pipeline.tfds_source("demo", "train", data_dir)
    except Exception as err:  # TFDS raises several types for a missing or partial build
        raise SweepError(
            f"data_dir={data_dir}: no demo TFDS build to read the tagging labels from ({err}); "
            "build it first (see configs/sweeps/data_scaling_demo.py)"
        ) from err
    return pipeline.label_vocab((source[i] for i in range(len(source))), TAG_TASKS)
