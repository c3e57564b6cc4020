"""Pretrained text towers from local Hugging Face directories: the shape, pooling and
tokenizer come from the directory, the weights load at first initialisation only, a locked
tower is frozen and dropout-free, and every broken directory stops at start-up naming the file
and key. Parity with PyTorch's BertModel (and BERT-base shapes) where transformers is
installed."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bert_dirs import write_bert_dir
from flax import nnx
from safetensors.numpy import load_file, save_file

from audiolm_pt import experiment, sharding
from audiolm_pt.experiment_sections import CheckpointConfig, OptimizerConfig
from audiolm_pt.models import hf_bert
from audiolm_pt.models.config import preset
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.models.text_encoder import TextEncoder
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.text import load_tokenizer
from audiolm_pt.train import checkpointing, synthetic
from audiolm_pt.train.build import build_trainer


def _config(directory, locked=False, tokenizer=""):
    model = preset("tiny").to_dict()
    model["text"].update(init_from=str(directory), locked=locked)
    pipeline = {"tokenizer": tokenizer, "max_text_len": 12}
    return {"model": model, "data": {"pipeline": pipeline}}


def _model_cfg(config):
    return experiment.parse(config).model


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return write_bert_dir(tmp_path_factory.mktemp("bert") / "tower")


def test_shape_pooling_and_tokenizer_come_from_the_directory(bert_dir):
    parsed = experiment.parse(_config(bert_dir))
    cfg = parsed.model
    assert parsed.data.pipeline.tokenizer == str(bert_dir)
    t = cfg.text.transformer
    assert (t.width, t.depth, t.num_heads, t.mlp_dim) == (32, 2, 4, 64)
    assert cfg.text.pooling == "mean"
    tokenizer = load_tokenizer(bert_dir)
    assert cfg.text.vocab_size == tokenizer.vocab_size == 5 + 15 + 52
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (2, 3, 0)
    assert cfg.decoder.vocab_size == tokenizer.vocab_size


def test_another_caption_tokenizer_is_refused(bert_dir, tmp_path):
    with pytest.raises(ValueError, match=r"data\.pipeline\.tokenizer=.*model\.text\.init_from"):
        experiment.parse(_config(bert_dir, tokenizer=str(tmp_path)))


def _trainer(cfg):
    return build_trainer(
        cfg,
        ObjectiveConfig(),
        OptimizerConfig(learning_rate=1e-2, warmup_steps=0),
        sharding.ShardingConfig(ici_data=2, ici_fsdp=4),
        total_steps=10,
    )


def _word_embeddings(state):
    return np.asarray(state["params"]["text_encoder"]["word"]["embedding"].get_value())


def test_weights_load_at_first_initialisation_only(bert_dir, tmp_path):
    trainer = _trainer(_model_cfg(_config(bert_dir)))
    state = trainer.init()
    stored = load_file(str(bert_dir / "model.safetensors"))
    np.testing.assert_array_equal(
        _word_embeddings(state), stored["embeddings.word_embeddings.weight"]
    )
    query = state["params"]["text_encoder"]["layers"]["blocks"]["attn"]["query"]["kernel"]
    np.testing.assert_array_equal(
        np.asarray(query.get_value())[1].reshape(32, 32),
        stored["encoder.layer.1.attention.self.query.weight"].T,
    )
    # a resumed run keeps its own tower, whatever the directory holds
    params = state["params"]
    params["text_encoder"]["word"]["embedding"].set_value(
        params["text_encoder"]["word"]["embedding"].get_value() + 1.0
    )
    iterator = synthetic.SyntheticIterator(trainer.model_cfg, 8, 24, 8, seed=0)
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"), CheckpointConfig())
    ckpt.save(3, {**state, "params": params}, iterator)
    ckpt.wait()
    restored, origin = checkpointing.restore_or_init(
        ckpt, trainer.abstract, trainer.shardings, iterator, trainer.init
    )
    ckpt.close()
    assert origin == "resumed"
    np.testing.assert_array_equal(
        _word_embeddings(restored), stored["embeddings.word_embeddings.weight"] + 1.0
    )


def test_a_locked_tower_is_frozen_and_deterministic(bert_dir, tmp_path):
    cfg = _model_cfg(_config(bert_dir, locked=True))
    trainer = _trainer(cfg)
    state = trainer.init()
    before = jax.device_get(state["params"])
    batch = next(synthetic.SyntheticIterator(cfg, 8, 24, 8, seed=1))
    for _ in range(2):
        state, metrics = trainer.step(state, batch)
    after = jax.device_get(state["params"])
    assert np.isfinite(float(metrics["loss"]))
    for a, b in zip(
        jax.tree.leaves(before["text_encoder"]), jax.tree.leaves(after["text_encoder"]), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(before["audio_encoder"]),
            jax.tree.leaves(after["audio_encoder"]),
            strict=True,
        )
    ]
    assert all(moved)
    model = nnx.merge(trainer.graphdef, after, jax.device_get(state["rest"]))
    tokens, mask = batch["text_tokens"], batch["text_mask"]
    train_mode = model.text_features(tokens, mask, deterministic=False, rng=jax.random.key(0))
    np.testing.assert_array_equal(train_mode, model.text_features(tokens, mask))
    # the frozen tower's optimizer state (empty placeholders) saves and restores
    iterator = synthetic.SyntheticIterator(cfg, 8, 24, 8, seed=0)
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"), CheckpointConfig())
    ckpt.save(2, state, iterator)
    ckpt.wait()
    restored, origin = checkpointing.restore_or_init(
        ckpt, trainer.abstract, trainer.shardings, iterator, trainer.init
    )
    ckpt.close()
    assert origin == "resumed"
    for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(restored["params"]), strict=True):
        np.testing.assert_array_equal(a, b)


def _break(bert_dir, tmp_path, edit):
    broken = write_bert_dir(tmp_path / "broken")
    edit(broken)
    return broken


def _set_config(d, **changes):
    (d / "config.json").write_text(
        json.dumps({**json.loads((d / "config.json").read_text()), **changes})
    )


def _edit_weights(d, edit):
    weights = load_file(str(d / "model.safetensors"))
    edit(weights)
    save_file(weights, str(d / "model.safetensors"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: (d / "config.json").unlink(), r"config\.json: missing"),
        (lambda d: (d / "config.json").write_text("{bert"), r"config\.json: not valid JSON"),
        (lambda d: (d / "model.safetensors").unlink(), r"model\.safetensors: missing"),
        (
            lambda d: (d / "vocab.txt").unlink(),
            r"no tokenizer at .*tokenizer\.json \(nor a vocab\.txt",
        ),
        (
            lambda d: (d / "vocab.txt").write_text(
                (d / "vocab.txt").read_text().replace("[PAD]", "[PAX]")
            ),
            r"vocab\.txt: no pad token",
        ),
        (
            lambda d: (d / "tokenizer.json").write_text("[]"),
            r"tokenizer\.json: not a tokenizers file",
        ),
        (
            lambda d: _set_config(d, model_type="roberta"),
            r"config\.json: model_type='roberta' is not supported",
        ),
        (
            lambda d: _set_config(d, num_hidden_layers="two"),
            r"config\.json: num_hidden_layers is missing or not an integer",
        ),
        (
            lambda d: _set_config(d, num_attention_heads=5),
            r"config\.json: hidden_size=32 is not a multiple of num_attention_heads=5",
        ),
        (
            lambda d: (d / "1_Pooling" / "config.json").write_text(
                '{"pooling_mode_max_tokens": true}'
            ),
            r"1_Pooling/config\.json: pooling_mode_max_tokens set; only",
        ),
        (
            lambda d: (d / "1_Pooling" / "config.json").write_text("[1]"),
            r"1_Pooling/config\.json: expected a JSON object",
        ),
        (
            lambda d: (d / "vocab.txt").write_text((d / "vocab.txt").read_text() + "extra\n"),
            r"tokenizer has 73 tokens but config\.json vocab_size=72",
        ),
        (
            lambda d: _edit_weights(
                d, lambda w: w.update({k: w[k][:-1] for k in ["embeddings.word_embeddings.weight"]})
            ),
            r"word_embeddings\.weight has shape \(71, 32\) but config\.json implies \(72, 32\)",
        ),
        (
            lambda d: _edit_weights(d, lambda w: w.pop("encoder.layer.1.output.dense.bias")),
            r"model\.safetensors: lacks tensor 'encoder\.layer\.1\.output\.dense\.bias'",
        ),
        (
            lambda d: _edit_weights(
                d,
                lambda w: w.update(
                    {k: w[k].T.copy() for k in ["encoder.layer.0.intermediate.dense.weight"]}
                ),
            ),
            r"encoder\.layer\.0\.intermediate\.dense\.weight has shape \(32, 64\) but "
            r"config\.json implies \(64, 32\)",
        ),
    ],
)
def test_broken_directories_stop_at_start_up_naming_file_and_key(bert_dir, tmp_path, edit, message):
    broken = _break(bert_dir, tmp_path, edit)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        _model_cfg(_config(broken))


def test_a_tensor_gone_after_start_up_is_named_at_initialisation(bert_dir, tmp_path):
    broken = _break(bert_dir, tmp_path, lambda d: None)
    trainer = _trainer(_model_cfg(_config(broken)))
    _edit_weights(broken, lambda w: w.pop("encoder.layer.1.output.dense.bias"))
    with pytest.raises(
        KeyError, match=r"model\.safetensors: lacks tensor 'encoder\.layer\.1\.output\.dense\.bias'"
    ):
        trainer.init()


_transformers = importlib.util.find_spec("transformers") is not None and (
    importlib.util.find_spec("torch") is not None
)


@pytest.mark.reference
@pytest.mark.skipif(not _transformers, reason="transformers and torch not installed")
def test_matches_pytorch_bert_model(bert_dir):
    import torch
    import transformers

    reference = transformers.BertModel.from_pretrained(
        str(bert_dir), add_pooling_layer=False
    ).eval()
    cfg = _model_cfg(_config(bert_dir))
    model = AudioTextModel(cfg, rngs=nnx.Rngs(0))
    state = _trainer(cfg).init()
    nnx.update(model, jax.device_get(state["params"]))
    tokenizer = load_tokenizer(bert_dir)
    ids = [
        [tokenizer.bos_id, *tokenizer.encode(t), tokenizer.eos_id]
        for t in ("a dog barks", "piano plays slowly")
    ]
    length = max(map(len, ids))
    tokens = np.array([i + [0] * (length - len(i)) for i in ids], np.int32)
    mask = np.array([[1] * len(i) + [0] * (length - len(i)) for i in ids], bool)
    with torch.no_grad():
        states = reference(
            input_ids=torch.tensor(tokens, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
        ).last_hidden_state.numpy()
    expected = (states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(
        model.text_features(jnp.asarray(tokens), jnp.asarray(mask)), expected, atol=2e-5
    )


@pytest.mark.reference
@pytest.mark.skipif(not _transformers, reason="transformers and torch not installed")
def test_bert_base_shapes_map_one_to_one(tmp_path):
    import torch
    import transformers

    base = {  # bert-base-uncased's config.json
        "model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522,
        "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(base))
    text = hf_bert.text_config_from_hf(tmp_path)
    with torch.device("meta"):
        reference = transformers.BertModel(transformers.BertConfig(**base), add_pooling_layer=False)
    weights = {k: np.zeros(v.shape, np.float32) for k, v in reference.state_dict().items()}
    encoder = nnx.eval_shape(lambda: TextEncoder(text, rngs=nnx.Rngs(0)))
    flat = nnx.to_flat_state(nnx.state(encoder, nnx.Param))
    shapes = {tuple(p): v.get_value().shape for p, v in flat}
    arrays = hf_bert.arrays_from_weights(text, weights, shapes)
    assert sum(a.size for a in arrays.values()) == sum(
        w.size for k, w in weights.items() if "position_ids" not in k
    )
