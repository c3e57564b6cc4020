"""Captioning: a text decoder cross-attending to audio frames, trained autoregressively with
label smoothing 0.1; a quarter of the examples are decoded CapPa-style in parallel.

    python -m audiolm_pt.main --config=configs/captioning.py:base --workdir=/tmp/cap \
        --config.data.data_dir=DATA --config.data.pipeline.tokenizer=TOKENIZER_JSON

The arg is the model size: tiny, small, base (default) or large.
`--config.objective.parallel_fraction=0` gives pure autoregressive training.
"""

from configs import common


def get_config(arg: str | None = None):
    config = common.get_config("captioning", common.size_of(arg))
    config.objective.parallel_fraction = 0.25
    return config
