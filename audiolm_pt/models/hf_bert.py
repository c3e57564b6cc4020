"""Loading a Hugging Face BERT-family checkpoint from a local directory (config.json +
model.safetensors) into `TextEncoder`: the directory's checks, the config translation and the
name/layout mapping. HF stores Linear weights as [out, in]; ours are [in, out] with the
attention head axes split.

BERT-family means `model_type` "bert": BERT itself, MiniLM and the sentence-transformers models
built on them (all-MiniLM-L6-v2, BGE, E5 ...). Other families (RoBERTa's offset positions,
DistilBERT's names, ALBERT's factorised embeddings) fail at the check, naming the key.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import load_file

from audiolm_pt.json_file import read_object
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
_LAYER = "encoder.layer.{i}."


def read_hf_config(path: str | Path) -> dict[str, Any]:
    """config.json of the directory, checked to describe a BERT-family encoder this module can
    load; errors name the file and the key."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing (a pretrained text tower needs its config)")
    hf = read_object(file)
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
    if hf["hidden_size"] % hf["num_attention_heads"]:
        raise ValueError(
            f"{file}: hidden_size={hf['hidden_size']} is not a multiple of "
            f"num_attention_heads={hf['num_attention_heads']}"
        )
    return hf


def sentence_pooling(path: str | Path) -> str | None:
    """The sentence-transformers pooling of the directory ('cls' or 'mean'), if it has one."""
    file = Path(path) / POOLING_FILE
    if not file.is_file():
        return None
    modes = read_object(file)
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    if modes.get("pooling_mode_cls_token"):
        return "cls"
    chosen = sorted(k for k, v in modes.items() if k.startswith("pooling_mode_") and v)
    raise ValueError(
        f"{file}: {', '.join(chosen) or 'no pooling_mode_* key'} set; only "
        "pooling_mode_mean_tokens or pooling_mode_cls_token is supported"
    )


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


def check_weights(path: str | Path, cfg: TextEncoderConfig) -> None:
    """model.safetensors exists and holds every tensor the encoder of `cfg` loads, in the
    shape config.json implies (read from the header only, so it is cheap at start-up)."""
    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing (a pretrained text tower needs its weights)")
    with safe_open(str(file), framework="numpy") as f:
        names = {k.removeprefix("bert."): k for k in f.keys()}  # noqa: SIM118 (not a dict)
        for name, expected in _hf_shapes(cfg).items():
            if name not in names:
                raise ValueError(f"{file}: lacks tensor {name!r}")
            shape = tuple(f.get_slice(names[name]).get_shape())
            if shape != expected:
                raise ValueError(
                    f"{file}: {name} has shape {shape} but {CONFIG_FILE} implies {expected}"
                )


def _hf_shapes(cfg: TextEncoderConfig) -> dict[str, tuple[int, ...]]:
    """Every Hugging Face tensor name the encoder of `cfg` loads -> its shape in the file."""
    h, f = cfg.transformer.width, cfg.transformer.mlp_dim
    special = {
        _WORD_EMBEDDINGS: (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_positions, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "intermediate.dense.weight": (f, h),
        "intermediate.dense.bias": (f,),
        "output.dense.weight": (h, f),
    }
    shapes = {}
    for template, _ in _mapping(cfg).values():
        layers = range(cfg.transformer.depth) if "{i}" in template else [None]
        key = template.removeprefix(_LAYER)
        # Within a layer the only non-square matrices are the MLP's; vectors are width long.
        matrix = template.endswith(".weight") and "LayerNorm" not in template
        shape = special.get(key, (h, h) if matrix else (h,))
        shapes.update({template.format(i=i): shape for i in layers})
    return shapes


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
        table[("layers", "blocks", *path)] = (_LAYER + hf_name, fn)
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
