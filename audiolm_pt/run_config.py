"""A run's experiment config as the trainer records it: the file it writes into the workdir,
and the model config derived from it (vocabulary sizes and special ids follow the tokenizer,
so they never disagree with the data).

Light on purpose: evaluators and `audiolm_pt.load` read runs through this module without
importing the trainer's metric writers (clu, TensorFlow).
"""

from typing import TYPE_CHECKING, Any

from audiolm_pt.models.config import ModelConfig

if TYPE_CHECKING:  # the trainer's assembly imports this module where ml_collections may not be
    import ml_collections

CONFIG_NAME = "config.json"


def plain(config: Any) -> Any:
    """A ConfigDict section as plain dicts; anything else unchanged."""
    return config.to_dict() if hasattr(config, "to_dict") else config


def model_config(config: "ml_collections.ConfigDict", tokenizer: Any | None) -> ModelConfig:
    """The model config of experiment `config`, with the tokenizer's vocabulary and ids."""
    values = plain(config.model)
    if tokenizer is not None:
        values.setdefault("text", {})["vocab_size"] = tokenizer.vocab_size
        values.setdefault("decoder", {}).update(
            vocab_size=tokenizer.vocab_size,
            bos_id=tokenizer.bos_id,
            eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id,
            mask_id=tokenizer.mask_id,
        )
    return ModelConfig.from_dict(values, path="model.")
