"""Hybrid (CoCa-style): contrastive InfoNCE plus captioning, summed with equal weights.

    python -m audiolm_pt.main --config=configs/hybrid.py:base --workdir=/tmp/hybrid \
        --config.data.data_dir=DATA --config.data.pipeline.tokenizer=TOKENIZER_JSON

The arg is the model size: tiny, small, base (default) or large.
"""

from configs import common


def get_config(arg: str | None = None):
    config = common.get_config("hybrid", common.size_of(arg))
    config.objective.parallel_fraction = 0.25
    return config
