"""Supervised tagging (multi-label BCE): the "supervised initialisation" baseline.

    python -m audiolm_pt.main --config=configs/tagging.py:base --workdir=/tmp/tag \
        --config.data.data_dir=DATA --config.data.tfds_names='("demo",)' \
        --config.data.pipeline.label_task=event --config.data.pipeline.label_vocab='(...)' \
        --config.model.heads.num_labels=N

The arg is the model size: tiny, small, base (default) or large. `model.heads.num_labels`
must equal the length of `data.pipeline.label_vocab`.
"""

from configs import common


def get_config(arg: str | None = None):
    # 527 classes: the AudioSet ontology; set it to the length of your label vocabulary.
    config = common.get_config("tagging", common.size_of(arg), num_labels=527)
    config.data.pipeline.label_task = ""
    config.data.pipeline.label_vocab = ()
    return config
