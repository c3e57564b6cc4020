"""Small BERT-family checkpoint directories written by the tests themselves: config.json,
model.safetensors with Hugging Face tensor names (random weights) and a WordPiece vocab.txt."""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words besides the single letters and "##" pieces below (no duplicates: a repeated
# vocab.txt line would shrink the vocabulary).
WORDS = ["the", "dog", "cat", "barks", "meows", "piano", "plays", "slowly", "fast", "loud"]
WORDS += ["sound", "of", "music", "speech", "man"]
CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "hidden_act": "gelu",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "position_embedding_type": "absolute",
}


def bert_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights of a BertModel of `config`, under Hugging Face's names."""
    rng = np.random.default_rng(seed)
    d, f = config["hidden_size"], config["intermediate_size"]

    def w(*shape):
        return (0.05 * rng.standard_normal(shape)).astype(np.float32)

    out = {
        "embeddings.word_embeddings.weight": w(config["vocab_size"], d),
        "embeddings.position_embeddings.weight": w(config["max_position_embeddings"], d),
        "embeddings.token_type_embeddings.weight": w(config["type_vocab_size"], d),
        "embeddings.LayerNorm.weight": 1 + w(d),
        "embeddings.LayerNorm.bias": w(d),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            out[f"{p}attention.self.{name}.weight"] = w(d, d)
            out[f"{p}attention.self.{name}.bias"] = w(d)
        out[f"{p}attention.output.dense.weight"] = w(d, d)
        out[f"{p}attention.output.dense.bias"] = w(d)
        out[f"{p}attention.output.LayerNorm.weight"] = 1 + w(d)
        out[f"{p}attention.output.LayerNorm.bias"] = w(d)
        out[f"{p}intermediate.dense.weight"] = w(f, d)
        out[f"{p}intermediate.dense.bias"] = w(f)
        out[f"{p}output.dense.weight"] = w(d, f)
        out[f"{p}output.dense.bias"] = w(d)
        out[f"{p}output.LayerNorm.weight"] = 1 + w(d)
        out[f"{p}output.LayerNorm.bias"] = w(d)
    return out


def write_bert_dir(path: Path, seed: int = 0, pooling: str | None = "mean", **overrides) -> Path:
    """A loadable directory at `path`; `overrides` change config.json entries."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = (
        SPECIALS
        + WORDS
        + list("abcdefghijklmnopqrstuvwxyz")
        + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    )
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = {**CONFIG, "vocab_size": len(vocab), **overrides}
    (path / "config.json").write_text(json.dumps(config))
    save_file(bert_weights(config, seed), str(path / "model.safetensors"))
    if pooling:
        (path / "1_Pooling").mkdir(exist_ok=True)
        modes = {
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_cls_token": pooling == "cls",
        }
        (path / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    return path
