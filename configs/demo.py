"""Trains a small model on the demo corpus on CPU in about thirteen minutes (2 cores).

    bash launch/demo.sh   # builds demo_out/tfds first
    python -m audiolm_pt.main --config=configs/demo.py:contrastive --workdir=demo_out/train

The arg picks the objective: contrastive (default), siglip, captioning or hybrid, optionally
followed by a size: ",tiny" (the default: the `tiny` preset's width-64 audio tower), ",wide"
(width 256 in every tower, same depth) or ",zipformer" (a demo-size Zipformer audio encoder,
`DEMO_ZIPFORMER`: one layer per stack at the reference's rates, widths 64-128, a lighter
conv embed). Held-out loss on the demo's validation split is logged
every 200 steps.

The recipe, lever by lever (notebooks/results/demo_levers.md): objectives with a text tower
use all-MiniLM-L6-v2, locked (its caption features cached once), with its own tokenizer;
the audio tower reads standardised fbank features and sees a random half of its tokens per
clip in training (token dropout, which also halves the step's cost), without SpecAugment;
AdamW at 3e-3 for DEMO_STEPS steps of 32 clips. A larger audio tower (width 128, depth 4)
learned no better per unit of time on 2 cores, nor did a batch of 128, a patch front end, the
hybrid objective or mixup.
"""

import json
from pathlib import Path

import audiolm_pt
from audiolm_pt.models.config import ZIPFORMER_MIN_FRAMES
from configs import common

DEMO_TOKENIZER = str(Path(audiolm_pt.__file__).parent / "assets" / "demo_tokenizer.model")

OBJECTIVES = ("contrastive", "siglip", "captioning", "hybrid")
SIZES = ("tiny", "wide", "zipformer")
# The reference's six stacks and frame rates, one layer each, at demo widths, and the conv
# embed's channels cut from (8, 32, 128), which would cost more than the whole encoder here.
# It still costs about six times the demo transformer's FLOPs per clip (the embed's ConvNeXt
# block alone costs half the transformer), so it trains ZIPFORMER_STEPS steps: the demo's
# training time.
DEMO_ZIPFORMER = {
    "num_layers": (1, 1, 1, 1, 1, 1),
    "dims": (48, 64, 96, 128, 96, 64),
    "ff_dims": (96, 128, 192, 256, 192, 128),
    "heads": (2, 2, 2, 4, 2, 2),
    "kernels": (15, 15, 7, 7, 7, 15),
    "embed_channels": (4, 8, 16),
}
# 2,400 steps (the recipe before token dropout) times keep 0.5's examples/s over keep 1.0's
# (benchmarks/results/token_keep_step.json): 4,400 steps learned no better and took the demo
# past 20 minutes.
DEMO_STEPS = 3711
DEMO_TOKEN_KEEP = 0.5
# The Zipformer (which has no token dropout) for the transformer's 2,400 steps at keep 1.0: that
# times the Zipformer's examples/s over the transformer's (31.2 / 224.5, measured in one run of
# benchmarks/train_step.py, in benchmarks/results/encoder_comparison.json).
ZIPFORMER_STEPS = 330
WIDE_WIDTH = 256
# Measured on a 2,000-clip demo corpus's training split (every 10th clip, 74,525 frames).
FBANK_MEAN = 9.37
FBANK_STD = 10.11
WIDE_HEAD_DIM = 64
# Zero-shot prompts: plain label words in wording no demo caption uses (a test checks this).
ZERO_SHOT_TEMPLATES = ("you can hear {}", "an example of {}", "audio of {}")
ZERO_SHOT_TASKS = ("language", "instrument_family", "event_category", "domain")
# The attention probe (about two of the evaluation's five minutes) is left to
# `python -m audiolm_pt.evaluate` run by hand.
PROBE_POOLINGS = ("mean", "mean_std", "stages")


def eval_options() -> str:
    """The demo evaluation's `--options` JSON for `python -m audiolm_pt.evaluate`."""
    zero_shot = {"tasks": list(ZERO_SHOT_TASKS), "templates": list(ZERO_SHOT_TEMPLATES)}
    return json.dumps({"zero_shot": zero_shot, "linear_probe": {"poolings": list(PROBE_POOLINGS)}})


def get_config(arg: str | None = None):
    objective, _, size = (arg or "contrastive").partition(",")
    if objective not in OBJECTIVES:
        raise ValueError(f"config arg {arg!r}: expected one of {OBJECTIVES}[,{'|,'.join(SIZES)}]")
    if size not in ("", *SIZES):
        raise ValueError(f"config arg {arg!r}: the size after the comma is one of {SIZES}")
    config = common.get_config(objective, "tiny")
    if size == "wide":
        for tower in ("audio", "text", "decoder"):
            config.model[tower].transformer.update(
                width=WIDE_WIDTH, num_heads=WIDE_WIDTH // WIDE_HEAD_DIM, mlp_dim=4 * WIDE_WIDTH
            )
        config.model.heads.joint_dim = WIDE_WIDTH
    if size == "zipformer":
        config.model.audio.encoder = "zipformer"
        config.model.audio.zipformer.update(DEMO_ZIPFORMER)
        config.model.audio.transformer.update(width=max(DEMO_ZIPFORMER["dims"]), mlp_dim=512)
        config.data.pipeline.min_frames = ZIPFORMER_MIN_FRAMES
    else:
        config.model.audio.token_keep = DEMO_TOKEN_KEEP
    config.model.audio.max_frames = 500
    # Mean and standard deviation of the demo corpus's training fbank features.
    config.model.audio.input_mean = FBANK_MEAN
    config.model.audio.input_std = FBANK_STD
    config.optimizer.learning_rate = 3e-3
    config.optimizer.warmup_steps = 50
    config.train.num_steps = ZIPFORMER_STEPS if size == "zipformer" else DEMO_STEPS
    config.train.log_every = 20
    config.checkpoint.every_steps = 800
    config.checkpoint.keep_every = 0
    config.data.tfds_names = ("demo",)
    config.data.data_dir = "demo_out/tfds"
    config.data.eval_split = "valid"
    config.data.pipeline.global_batch_size = 32
    config.data.pipeline.max_frames = 500
    config.data.pipeline.max_text_len = 32
    config.data.pipeline.tokenizer = DEMO_TOKENIZER
    # Objectives with a text tower use all-MiniLM-L6-v2, locked, with its own tokenizer.
    text_dir = common.minilm_dir() if objective != "captioning" else ""
    if text_dir:
        config.model.text.init_from = text_dir
        config.model.text.locked = True
        config.data.pipeline.tokenizer = ""
    config.data.pipeline.num_workers = 1
    # Augmentation, spelled out so each lever can be switched from the command line: token
    # dropout already hides half of each clip, and SpecAugment on top cost retrieval and the
    # language probe (notebooks/results/demo_levers.md).
    config.data.pipeline.time_masks = 0
    config.data.pipeline.freq_masks = 0
    config.data.pipeline.mixup_prob = 0.0
    config.evals.heldout_loss = {"every_steps": 200, "num_batches": 4}
    if objective in ("captioning", "hybrid"):
        config.objective.parallel_fraction = 0.25
    return config
