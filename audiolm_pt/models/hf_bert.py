"""Loading a Hugging Face BERT-family checkpoint from a local directory (config.json +
model.safetensors) into `TextEncoder`: the directory's checks, the config translation and the
name/layout mapping. HF stores Linear weights as [out, in]; ours are [in, out] with the
attention head axes split.

BERT-family means `model_type` "bert": BERT itself, MiniLM and the sentence-transformers models
built on them (all-MiniLM-L6-v2, BGE, E5 ...). Other families (RoBERTa's offset positions,
DistilBERT's names, ALBERT's factorised embeddings) fail at the check, naming the key.
"""

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import load_file

from audiolm_pt.models.config import TextEncoderConfig, TransformerConfig
from audiolm_pt.models.text_encoder import TextEncoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# sentence-transformers keeps its pooling rule here.
POOLING_FILE = "1_Pooling/config.json"
MODEL_TYPES = ("bert",)
# Parts of a BertModel checkpoint the encoder does not use.
_UNUSED_PREFIXES = ("pooler.", "embeddings.position_ids", "cls.")
_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def read_hf_config(path: str | Path) -> dict[str, Any]:
    """config.json of the directory, checked to describe a BERT-family encoder this module can
    load; errors name the file and the key."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing (a pretrained text tower needs its config)")
    try:
        hf = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from err
    checks = (
        ("model_type", hf.get("model_type"), MODEL_TYPES),
        ("hidden_act", hf.get("hidden_act", "gelu"), ("gelu",)),
        ("position_embedding_type", hf.get("position_embedding_type", "absolute"), ("absolute",)),
    )
    for key, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"{file}: {key}={value!r} is not supported (expected {allowed})")
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
    ):
        if not isinstance(hf.get(key), int):
            raise ValueError(f"{file}: {key} is missing or not an integer")
    return hf


def sentence_pooling(path: str | Path) -> str | None:
    """The sentence-transformers pooling of the directory ('cls' or 'mean'), if it has one."""
    file = Path(path) / POOLING_FILE
    if not file.is_file():
        return None
    modes = json.loads(file.read_text())
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    if modes.get("pooling_mode_cls_token"):
        return "cls"
    raise ValueError(f"{file}: only mean or CLS-token pooling is supported")


def text_config_from_hf(path: str | Path, **overrides: Any) -> TextEncoderConfig:
    """A TextEncoderConfig matching the HF BERT config.json in `path` (and its
    sentence-transformers pooling, when it has one); `overrides` replace fields."""
    path = Path(path)
    hf = read_hf_config(path)
    transformer = TransformerConfig(
        width=hf["hidden_size"],
        depth=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        mlp_dim=hf["intermediate_size"],
        dropout_rate=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout_rate=hf.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        **overrides.pop("transformer", {}),
    )
    fields = {
        "vocab_size": hf["vocab_size"],
        "max_positions": hf["max_position_embeddings"],
        "type_vocab_size": hf.get("type_vocab_size", 2),
    }
    pooling = sentence_pooling(path)
    if pooling:
        fields["pooling"] = pooling
    return TextEncoderConfig(transformer=transformer, **{**fields, **overrides})


def check_weights(path: str | Path, vocab_size: int) -> None:
    """model.safetensors exists and its word embeddings have `vocab_size` rows (read from the
    header only)."""
    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing (a pretrained text tower needs its weights)")
    with safe_open(str(file), framework="numpy") as f:
        names = {k.removeprefix("bert."): k for k in f.keys()}  # noqa: SIM118 (not a dict)
        if _WORD_EMBEDDINGS not in names:
            raise ValueError(f"{file}: lacks tensor {_WORD_EMBEDDINGS!r}")
        rows = f.get_slice(names[_WORD_EMBEDDINGS]).get_shape()[0]
    if rows != vocab_size:
        raise ValueError(
            f"{file}: {_WORD_EMBEDDINGS} has {rows} rows but {CONFIG_FILE} vocab_size={vocab_size}"
        )


def _mapping(cfg: TextEncoderConfig) -> dict[tuple, tuple[str, Callable]]:
    """Our parameter path -> (HF name with {i} for the layer, transform of the HF array)."""
    t = cfg.transformer
    h, dh = t.num_heads, t.width // t.num_heads
    same = lambda w: w  # noqa: E731
    heads_in = lambda w: w.T.reshape(-1, h, dh)  # noqa: E731
    heads_bias = lambda b: b.reshape(h, dh)  # noqa: E731
    heads_out = lambda w: w.T.reshape(h, dh, -1)  # noqa: E731
    transpose = lambda w: w.T  # noqa: E731
    table = {
        ("word", "embedding"): (_WORD_EMBEDDINGS, same),
        ("position", "embedding"): ("embeddings.position_embeddings.weight", same),
        ("token_type", "embedding"): ("embeddings.token_type_embeddings.weight", same),
        ("embed_norm", "scale"): ("embeddings.LayerNorm.weight", same),
        ("embed_norm", "bias"): ("embeddings.LayerNorm.bias", same),
    }
    layer = "encoder.layer.{i}."
    per_layer = {
        ("attn", "out", "kernel"): ("attention.output.dense.weight", heads_out),
        ("attn", "out", "bias"): ("attention.output.dense.bias", same),
        ("attn_norm", "scale"): ("attention.output.LayerNorm.weight", same),
        ("attn_norm", "bias"): ("attention.output.LayerNorm.bias", same),
        ("mlp", "up", "kernel"): ("intermediate.dense.weight", transpose),
        ("mlp", "up", "bias"): ("intermediate.dense.bias", same),
        ("mlp", "down", "kernel"): ("output.dense.weight", transpose),
        ("mlp", "down", "bias"): ("output.dense.bias", same),
        ("mlp_norm", "scale"): ("output.LayerNorm.weight", same),
        ("mlp_norm", "bias"): ("output.LayerNorm.bias", same),
    }
    for name in ("query", "key", "value"):
        per_layer[("attn", name, "kernel")] = (f"attention.self.{name}.weight", heads_in)
        per_layer[("attn", name, "bias")] = (f"attention.self.{name}.bias", heads_bias)
    for path, (hf_name, fn) in per_layer.items():
        table[("layers", "blocks", *path)] = (layer + hf_name, fn)
    return table


def hf_bert_arrays(
    cfg: TextEncoderConfig, path: str | Path, shapes: dict[tuple, tuple[int, ...]]
) -> dict[tuple, np.ndarray]:
    """Our parameter path -> its array from the checkpoint in directory `path`, for every
    path of `shapes` (path -> expected shape); checked as `arrays_from_weights` checks."""
    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing (a pretrained text tower needs its weights)")
    return arrays_from_weights(cfg, load_file(str(file)), shapes, file)


def arrays_from_weights(
    cfg: TextEncoderConfig,
    weights: Mapping[str, np.ndarray],
    shapes: dict[tuple, tuple[int, ...]],
    source: str | Path = "checkpoint",
) -> dict[tuple, np.ndarray]:
    """Our parameter path -> its array from HF-named `weights` (a `bert.` prefix allowed).

    Raises, naming `source`, if a parameter is missing from the weights, a shape differs, or
    the weights hold tensors this encoder would silently ignore.
    """
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    table = _mapping(cfg)
    used, out = set(), {}
    for var_path, shape in shapes.items():
        hf_name, fn = table[var_path]
        if "{i}" in hf_name:
            names = [hf_name.format(i=i) for i in range(cfg.transformer.depth)]
            value = np.stack([fn(_get(weights, n, source)) for n in names])
        else:
            names = [hf_name]
            value = fn(_get(weights, hf_name, source))
        if value.shape != tuple(shape):
            raise ValueError(
                f"{source}: {'/'.join(map(str, var_path))}: checkpoint shape {value.shape} "
                f"!= model shape {tuple(shape)}"
            )
        out[var_path] = value
        used.update(names)
    left = sorted(k for k in set(weights) - used if not k.startswith(_UNUSED_PREFIXES))
    if left:
        raise ValueError(f"{source}: {len(left)} tensors the encoder lacks, e.g. {left[:3]}")
    return out


def load_hf_bert(encoder: TextEncoder, path: str | Path) -> None:
    """Overwrites the encoder's parameters in place with the checkpoint in `path` (checked as
    `hf_bert_arrays` checks it)."""
    state = nnx.state(encoder, nnx.Param)
    flat = nnx.to_flat_state(state)
    shapes = {tuple(p): var.get_value().shape for p, var in flat}
    arrays = hf_bert_arrays(encoder.cfg, path, shapes)
    for var_path, var in flat:
        var.set_value(jnp.asarray(arrays[tuple(var_path)], var.get_value().dtype))
    nnx.update(encoder, state)


def _get(weights: Mapping[str, np.ndarray], name: str, source: str | Path) -> np.ndarray:
    if name not in weights:
        raise KeyError(f"{source}: lacks tensor {name!r}")
    return weights[name]
