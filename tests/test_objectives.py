"""Objectives on the tiny model: losses against independent formulas, equality of loss and
parameter gradients across meshes, and exact gradient accumulation for every objective."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from audiolm_pt import objectives, sharding
from audiolm_pt.models import config as model_config
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.train import grad_accum

OBJECTIVES = ("contrastive", "siglip", "captioning", "hybrid", "tagging")
B, T, MELS, L, VOCAB, LABELS = 16, 32, 16, 8, 64, 5
MESHES = {
    "1x1x1": sharding.ShardingConfig(),
    "8x1x1": sharding.ShardingConfig(),
    "2x2x2": sharding.ShardingConfig(ici_data=2, ici_fsdp=2, ici_tensor=2),
    "1x8x1": sharding.ShardingConfig(ici_data=1, ici_fsdp=-1),
}
RNG = 7


def _model_cfg(objective: str) -> model_config.ModelConfig:
    cfg = model_config.preset("tiny")
    stack = dataclasses.replace(cfg.audio.transformer, depth=1, width=32, mlp_dim=64)
    return dataclasses.replace(
        cfg,
        objective=objective,
        audio=dataclasses.replace(
            cfg.audio, transformer=stack, n_mels=MELS, conv_channels=4, max_frames=T
        ),
        text=dataclasses.replace(cfg.text, transformer=stack, vocab_size=VOCAB, max_positions=L),
        decoder=dataclasses.replace(
            cfg.decoder, transformer=stack, vocab_size=VOCAB, max_length=L, mask_id=3
        ),
        heads=dataclasses.replace(
            cfg.heads, joint_dim=16, num_labels=LABELS if objective == "tagging" else 0
        ),
    )


@functools.cache
def _model(objective: str):
    return nnx.split(AudioTextModel(_model_cfg(objective), rngs=nnx.Rngs(0)), nnx.Param, ...)


def _objective_cfg(objective: str) -> objectives.ObjectiveConfig:
    return objectives.ObjectiveConfig(
        objective=objective, parallel_fraction=0.5, contrastive_weight=0.7, caption_weight=1.3
    )


@functools.cache
def _batch() -> dict[str, jax.Array]:
    ks = jax.random.split(jax.random.key(1), 6)
    frames = jax.random.randint(ks[1], (B,), T // 2, T + 1)
    lengths = jax.random.randint(ks[2], (B,), 2, L + 1)
    mask = jnp.arange(L)[None] < lengths[:, None]
    tokens = jax.random.randint(ks[3], (B, L), 4, VOCAB) * mask
    return {
        "features": jax.random.normal(ks[0], (B, T, MELS)),
        "feature_mask": jnp.arange(T)[None] < frames[:, None],
        "text_tokens": tokens,
        "text_mask": mask,
        "decoder_inputs": jnp.concatenate([jnp.ones((B, 1), jnp.int32), tokens[:, :-1]], 1),
        "decoder_targets": tokens,
        "decoder_mask": mask,
        "labels": jax.random.bernoulli(ks[4], 0.3, (B, LABELS)).astype(jnp.float32),
    }


@functools.cache
def _run(mesh_name: str, k: int):
    """{objective: ((loss, metrics), grads)} for every objective, one compile per (mesh, k)."""
    cfg = MESHES[mesh_name]
    mesh = sharding.make_mesh(cfg, jax.devices()[:1] if mesh_name == "1x1x1" else None)
    params = {}
    for o in OBJECTIVES:
        p = _model(o)[1]
        params[o] = jax.device_put(p, sharding.tree_shardings(p, mesh, cfg.rules))
    batch = jax.device_put(_batch(), sharding.batch_sharding(cfg, mesh))

    def all_objectives(params, batch):
        out = {}
        for o in OBJECTIVES:
            graphdef, _, rest = _model(o)
            out[o] = grad_accum.value_and_grad(
                graphdef,
                params[o],
                rest,
                batch,
                _objective_cfg(o),
                jax.random.key(RNG),
                num_microbatches=k,
                deterministic=True,
            )
        return out

    with jax.set_mesh(mesh):
        return jax.device_get(jax.jit(all_objectives)(params, batch))


def _leaf_errors(got, want) -> float:
    """Largest per-leaf max |got - want| / max |want|; leaves whose true gradient is zero (a
    key bias under softmax) are measured against 1e-3 of the largest gradient instead."""
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(want)]
    floor = 1e-3 * max(np.max(np.abs(x)) for x in leaves)
    return max(
        float(np.max(np.abs(np.asarray(g, np.float64) - w)) / max(np.max(np.abs(w)), floor))
        for g, w in zip(jax.tree.leaves(got), leaves, strict=True)
    )


def _rel(x, y) -> float:
    return abs(float(x) - float(y)) / abs(float(y))


@pytest.mark.parametrize(
    "mesh_name",
    [
        "2x2x2",
        pytest.param("8x1x1", marks=pytest.mark.slow),
        pytest.param("1x8x1", marks=pytest.mark.slow),
    ],
)
def test_loss_and_gradients_equal_across_meshes(mesh_name):
    want, got = _run("1x1x1", 1), _run(mesh_name, 1)
    for o in OBJECTIVES:
        (loss, metrics), grads = got[o]
        (want_loss, want_metrics), want_grads = want[o]
        loss_err, grad_err = _rel(loss, want_loss), _leaf_errors(grads, want_grads)
        print(f"{mesh_name} {o}: loss rel err {loss_err:.2e}, grad rel err {grad_err:.2e}")
        assert loss_err <= 1e-5, o
        assert grad_err <= 1e-5, o
        for key, value in want_metrics.items():
            np.testing.assert_allclose(metrics[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize(
    ("mesh_name", "k"), [("2x2x2", 2), pytest.param("1x1x1", 4, marks=pytest.mark.slow)]
)
def test_gradient_accumulation_equals_full_batch_for_every_objective(mesh_name, k):
    want, got = _run(mesh_name, 1), _run(mesh_name, k)
    for o in OBJECTIVES:
        (loss, metrics), grads = got[o]
        (want_loss, want_metrics), want_grads = want[o]
        loss_err, grad_err = _rel(loss, want_loss), _leaf_errors(grads, want_grads)
        print(f"{mesh_name} k={k} {o}: loss rel err {loss_err:.2e}, grad rel err {grad_err:.2e}")
        assert loss_err <= 1e-5, o
        assert grad_err <= 1e-5, o
        assert set(metrics) == set(want_metrics)
        for key, value in want_metrics.items():
            np.testing.assert_allclose(metrics[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def _reference_loss(objective: str, model, batch, parallel) -> jax.Array:
    """The objective written out from the model's public methods and optax."""
    frames, frame_mask = model.encode_audio(batch["features"], batch["feature_mask"])
    embeds = objective in ("contrastive", "siglip", "hybrid")
    a = model.audio_embedding(frames, frame_mask) if embeds else None
    total = 0.0
    if objective in ("contrastive", "hybrid"):
        t = model.text_embedding(batch["text_tokens"], batch["text_mask"])
        logits = model.logit_scale * a @ t.T
        labels = jnp.arange(B)
        infonce = (
            optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()
        ) / 2
        total += (0.7 if objective == "hybrid" else 1.0) * infonce
    if objective == "siglip":
        t = model.text_embedding(batch["text_tokens"], batch["text_mask"])
        logits = model.logit_scale * a @ t.T + model.siglip_bias
        signs = 2 * jnp.eye(B) - 1
        total += -jnp.sum(jax.nn.log_sigmoid(signs * logits)) / B
    if objective in ("captioning", "hybrid"):
        logits = model.caption_logits(
            frames, frame_mask, batch["decoder_inputs"], batch["decoder_mask"], parallel
        )
        targets = optax.smooth_labels(jax.nn.one_hot(batch["decoder_targets"], VOCAB), 0.1)
        per_token = optax.softmax_cross_entropy(logits, targets)
        mask = batch["decoder_mask"]
        caption = jnp.sum(per_token * mask) / jnp.sum(mask)
        total += (1.3 if objective == "hybrid" else 1.0) * caption
    if objective == "tagging":
        logits = model.tag_logits(frames, frame_mask)
        total += optax.sigmoid_binary_cross_entropy(logits, batch["labels"]).mean()
    return total


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_loss_fn_matches_reference_formula(objective):
    graphdef, params, rest = _model(objective)
    model = nnx.merge(graphdef, params, rest)
    cfg = _objective_cfg(objective)
    rng = jax.random.key(RNG)
    batch = _batch()
    loss, metrics = objectives.loss_fn(model, batch, cfg, rng, deterministic=True)
    prepared = objectives.prepare(batch, cfg, jax.random.split(rng)[0])
    parallel = prepared.get(objectives.PARALLEL, jnp.zeros(B, bool))
    want = _reference_loss(objective, model, batch, parallel)
    assert _rel(loss, want) <= 1e-5
    assert float(metrics["loss"]) == float(loss)


def test_parallel_flags_follow_the_configured_fraction():
    cfg = objectives.ObjectiveConfig(objective="captioning", parallel_fraction=0.25)
    batch = {"decoder_inputs": jnp.zeros((4000, 2), jnp.int32)}
    flags = objectives.prepare(batch, cfg, jax.random.key(0))[objectives.PARALLEL]
    assert flags.dtype == jnp.bool_
    assert abs(float(flags.mean()) - 0.25) < 0.03
    never = dataclasses.replace(cfg, parallel_fraction=0.0)
    assert not objectives.prepare(batch, never, jax.random.key(0))[objectives.PARALLEL].any()


def test_parallel_decoding_changes_the_caption_loss():
    graphdef, params, rest = _model("captioning")
    model = nnx.merge(graphdef, params, rest)
    rng = jax.random.key(RNG)
    losses = [
        objectives.loss_fn(
            model,
            _batch(),
            objectives.ObjectiveConfig("captioning", parallel_fraction=p),
            rng,
            deterministic=True,
        )[0]
        for p in (0.0, 1.0)
    ]
    assert abs(float(losses[0]) - float(losses[1])) > 1e-4


def test_objective_config_rejects_bad_values_naming_the_key():
    with pytest.raises(ValueError, match="objective='clip'"):
        objectives.ObjectiveConfig(objective="clip")
    with pytest.raises(ValueError, match="label_smoothing"):
        objectives.ObjectiveConfig(label_smoothing=1.5)
    with pytest.raises(ValueError, match="caption_weight"):
        objectives.ObjectiveConfig(caption_weight=-1.0)
