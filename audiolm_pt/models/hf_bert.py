"""Loading a Hugging Face BERT checkpoint (config.json + model.safetensors in a local
directory) into `TextEncoder`: the config translation and the name/layout mapping.
HF stores Linear weights as [out, in]; ours are [in, out] with the attention head axes split.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file

from audiolm_pt.models.config import TextEncoderConfig, TransformerConfig
from audiolm_pt.models.text_encoder import TextEncoder

# Parts of a BertModel checkpoint the encoder does not use.
_UNUSED_PREFIXES = ("pooler.", "embeddings.position_ids", "cls.")


def text_config_from_hf(path: str | Path, **overrides: Any) -> TextEncoderConfig:
    """A TextEncoderConfig matching the HF BERT config.json in `path`."""
    hf = json.loads((Path(path) / "config.json").read_text())
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act={hf['hidden_act']!r} unsupported (exact-erf gelu only)")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported")
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
    return TextEncoderConfig(transformer=transformer, **{**fields, **overrides})


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
        ("word", "embedding"): ("embeddings.word_embeddings.weight", same),
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


def load_hf_bert(encoder: TextEncoder, path: str | Path) -> None:
    """Overwrites the encoder's parameters in place with the checkpoint in `path`.

    Raises if a parameter is missing from the checkpoint, a shape differs, or the checkpoint
    holds weights this encoder would silently ignore.
    """
    weights = load_file(str(Path(path) / "model.safetensors"))
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    depth = encoder.cfg.transformer.depth
    table = _mapping(encoder.cfg)
    used = set()
    state = nnx.state(encoder, nnx.Param)
    for var_path, var in nnx.to_flat_state(state):
        hf_name, fn = table[tuple(var_path)]
        if "{i}" in hf_name:
            names = [hf_name.format(i=i) for i in range(depth)]
            value = np.stack([fn(_get(weights, n)) for n in names])
        else:
            names = [hf_name]
            value = fn(_get(weights, hf_name))
        if value.shape != var.get_value().shape:
            raise ValueError(
                f"{'/'.join(map(str, var_path))}: checkpoint shape {value.shape} "
                f"!= model shape {var.get_value().shape}"
            )
        var.set_value(jnp.asarray(value, var.get_value().dtype))
        used.update(names)
    nnx.update(encoder, state)
    left = sorted(k for k in set(weights) - used if not k.startswith(_UNUSED_PREFIXES))
    if left:
        raise ValueError(f"checkpoint has {len(left)} unmapped tensors, e.g. {left[:3]}")


def _get(weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in weights:
        raise KeyError(f"checkpoint lacks tensor {name!r}")
    return weights[name]
