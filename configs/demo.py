"""Trains a small model on the demo corpus on CPU in about ten minutes (2 cores).

    bash launch/demo.sh   # builds demo_out/tfds first
    python -m audiolm_pt.main --config=configs/demo.py:contrastive --workdir=demo_out/train

The arg picks the objective: contrastive (default), siglip, captioning or hybrid, optionally
followed by ",tiny" for the `tiny` preset's width-64 towers instead of the demo's width-256
ones (the data-scaling study, configs/sweeps/data_scaling_demo.py, uses them). Held-out loss
on the demo's validation split is logged every 200 steps.
"""

from pathlib import Path

import audiolm_pt
from configs import common

DEMO_TOKENIZER = str(Path(audiolm_pt.__file__).parent / "assets" / "demo_tokenizer.model")

OBJECTIVES = ("contrastive", "siglip", "captioning", "hybrid")
# The `tiny` preset's depth with width 256 in every tower. At width 64 the step is bound by
# memory traffic (norms, softmax, layout copies: about two thirds of its time on 2 cores) and
# reaches ~15% of the CPU's measured fp32 matmul peak; at 256 the matmuls dominate
# (benchmarks/results/train_step.json).
DEMO_WIDTH = 256
DEMO_HEAD_DIM = 64


def get_config(arg: str | None = None):
    objective, _, size = (arg or "contrastive").partition(",")
    if objective not in OBJECTIVES:
        raise ValueError(f"config arg {arg!r}: expected one of {OBJECTIVES}[,tiny]")
    if size not in ("", "tiny"):
        raise ValueError(f"config arg {arg!r}: the size after the comma can only be tiny")
    config = common.get_config(objective, "tiny")
    if not size:
        for tower in ("audio", "text", "decoder"):
            config.model[tower].transformer.update(
                width=DEMO_WIDTH, num_heads=DEMO_WIDTH // DEMO_HEAD_DIM, mlp_dim=4 * DEMO_WIDTH
            )
        config.model.heads.joint_dim = DEMO_WIDTH
    config.model.audio.max_frames = 500
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 50
    config.train.num_steps = 800
    config.train.log_every = 20
    config.checkpoint.every_steps = 400
    config.checkpoint.keep_every = 0
    config.data.tfds_names = ("demo",)
    config.data.data_dir = "demo_out/tfds"
    config.data.eval_split = "valid"
    config.data.pipeline.global_batch_size = 32
    config.data.pipeline.max_frames = 500
    config.data.pipeline.max_text_len = 32
    config.data.pipeline.tokenizer = DEMO_TOKENIZER
    config.data.pipeline.num_workers = 1
    config.evals.heldout_loss = {"every_steps": 200, "num_batches": 4}
    if objective in ("captioning", "hybrid"):
        config.objective.parallel_fraction = 0.25
    return config
