"""A run's experiment config as the trainer records it: the file it writes into the workdir,
and the model config derived from it (vocabulary sizes and special ids follow the tokenizer,
so they never disagree with the data).

Light on purpose: evaluators and `audiolm_pt.load` read runs through this module without
importing the trainer's metric writers (clu, TensorFlow).
"""

import os
from typing import TYPE_CHECKING, Any

from audiolm_pt.models import hf_bert
from audiolm_pt.models.config import ModelConfig

if TYPE_CHECKING:  # the trainer's assembly imports this module where ml_collections may not be
    import ml_collections

CONFIG_NAME = "config.json"
# Transformer settings a run chooses for itself even when a pretrained tower sets the shape.
NUMERICS = ("dtype", "param_dtype", "remat", "scan_layers")


def plain(config: Any) -> Any:
    """A ConfigDict section as plain dicts; anything else unchanged."""
    return config.to_dict() if hasattr(config, "to_dict") else config


def use_pretrained_tokenizer(config: "ml_collections.ConfigDict") -> None:
    """With `model.text.init_from`, that directory's tokenizer is the caption tokenizer:
    `data.pipeline.tokenizer` is set to the directory, or must already name it."""
    directory = config.model.get("text", {}).get("init_from", "")
    if not directory:
        return
    current = config.data.pipeline.get("tokenizer", "")
    if current and os.path.realpath(current) != os.path.realpath(directory):
        raise ValueError(
            f"data.pipeline.tokenizer={current} differs from model.text.init_from={directory}: "
            "a pretrained text tower reads its own tokenizer (leave data.pipeline.tokenizer empty)"
        )
    config.data.pipeline.tokenizer = directory


def _pretrained_text(text: dict[str, Any], tokenizer: Any | None) -> dict[str, Any]:
    """`model.text` with the shape and pooling of its `init_from` directory, after checking
    the directory's config, weights and tokenizer agree on the vocabulary."""
    directory = text["init_from"]
    hf_cfg = hf_bert.text_config_from_hf(directory)
    hf_bert.check_weights(directory, hf_cfg)
    hf = hf_cfg.to_dict()
    vocab = hf["vocab_size"]
    if tokenizer is not None and tokenizer.vocab_size != vocab:
        raise ValueError(
            f"model.text.init_from={directory}: the tokenizer has {tokenizer.vocab_size} tokens "
            f"but {hf_bert.CONFIG_FILE} vocab_size={vocab}"
        )
    # The directory decides the shape; the run keeps its own numerics (dtype, remat, scan).
    own = text.get("transformer", {})
    transformer = hf["transformer"] | {k: own[k] for k in NUMERICS if k in own}
    shape = {k: hf[k] for k in ("vocab_size", "max_positions", "type_vocab_size")}
    pooling = hf_bert.sentence_pooling(directory)
    if pooling:
        shape["pooling"] = pooling
    return {**text, **shape, "transformer": transformer}


def model_config(config: "ml_collections.ConfigDict", tokenizer: Any | None) -> ModelConfig:
    """The model config of experiment `config`, with the tokenizer's vocabulary and ids (and,
    for a pretrained text tower, its directory's shape)."""
    values = plain(config.model)
    if values.get("text", {}).get("init_from"):
        values["text"] = _pretrained_text(values["text"], tokenizer)
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
