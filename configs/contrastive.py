"""CLAP-style contrastive pretraining (symmetric InfoNCE, fixed temperature 0.07).

    python -m audiolm_pt.main --config=configs/contrastive.py:base --workdir=/tmp/clap \
        --config.data.data_dir=DATA --config.data.pipeline.tokenizer=TOKENIZER_JSON

The arg is the model size: tiny, small, base (the study's recipe, default) or large.
"""

from configs import common


def get_config(arg: str | None = None):
    return common.get_config("contrastive", common.size_of(arg))
