"""SigLIP-style sigmoid loss over all pairs, learnable scale (init 10) and bias (init -10).

    python -m audiolm_pt.main --config=configs/sigmoid.py:base --workdir=/tmp/siglip \
        --config.data.data_dir=DATA --config.data.pipeline.tokenizer=TOKENIZER_JSON

The arg is the model size: tiny, small, base (default) or large.
"""

from configs import common


def get_config(arg: str | None = None):
    return common.get_config("siglip", common.size_of(arg))
