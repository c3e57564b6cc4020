"""Microbatch splitting and the GradCache mechanics of `grad_accum` on a small two-tower model.

Equality with the full batch for every objective of the real model is in test_objectives.py;
here a model small enough to compile in seconds checks k = 1, 2, 4 on a sharded mesh,
including the learnable temperature, which only `combine` reads.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from audiolm_pt import objectives, sharding
from audiolm_pt.train import grad_accum

B, D, J, L = 16, 6, 4, 3


class _TwoTower(nnx.Module):
    """Linear audio tower over mean frames, bag-of-tokens text tower, learnable scale."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.audio = nnx.Linear(D, J, rngs=rngs)
        self.text = nnx.Embed(32, J, rngs=rngs)
        self.log_scale = nnx.Param(jnp.log(jnp.float32(5.0)))

    def encode_audio(self, features, feature_mask, *, deterministic, rng):
        return features, feature_mask

    def audio_embedding(self, frames, frame_mask):
        pooled = jnp.sum(frames * frame_mask[..., None], 1) / jnp.sum(frame_mask, 1)[:, None]
        x = jnp.tanh(self.audio(pooled))
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    def text_embedding(self, tokens, token_mask, *, deterministic, rng):
        x = jnp.sum(self.text(tokens) * token_mask[..., None], 1)
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    @property
    def logit_scale(self):
        return jnp.exp(self.log_scale.get_value())


def _batch():
    ks = jax.random.split(jax.random.key(3), 3)
    return {
        "features": jax.random.normal(ks[0], (B, 5, D)),
        "feature_mask": jnp.arange(5)[None] < jax.random.randint(ks[1], (B, 1), 1, 6),
        "text_tokens": jax.random.randint(ks[2], (B, L), 0, 32),
        "text_mask": jnp.ones((B, L), bool),
    }


def test_split_interleaves_and_merge_inverts():
    x = np.arange(12).reshape(6, 2)
    parts = grad_accum.split_microbatches({"x": x}, 3)["x"]
    assert parts.shape == (3, 2, 2)
    np.testing.assert_array_equal(parts[1], x[[1, 4]])
    np.testing.assert_array_equal(grad_accum.merge_microbatches(parts), x)
    with pytest.raises(ValueError, match=r"batch\['x'\] has 6 rows, not divisible by k=4"):
        grad_accum.split_microbatches({"x": x}, 4)


def test_gradcache_equals_full_batch_on_sharded_mesh():
    cfg = sharding.ShardingConfig(ici_data=2, ici_fsdp=2, ici_tensor=2)
    mesh = sharding.make_mesh(cfg)
    graphdef, params, rest = nnx.split(_TwoTower(rngs=nnx.Rngs(0)), nnx.Param, ...)
    obj = objectives.ObjectiveConfig(objective="contrastive", chunked=True)
    batch = jax.device_put(_batch(), sharding.batch_sharding(cfg, mesh))

    def run(params, batch):
        return [
            grad_accum.value_and_grad(
                graphdef,
                params,
                rest,
                batch,
                obj,
                jax.random.key(0),
                num_microbatches=k,
                deterministic=True,
            )
            for k in (1, 2, 4)
        ]

    with jax.set_mesh(mesh):
        results = jax.jit(run)(params, batch)

    # Independent reference: the InfoNCE formula on the unsharded batch, plain autodiff.
    def reference(params):
        model = nnx.merge(graphdef, params, rest)
        b = _batch()
        a = model.audio_embedding(b["features"], b["feature_mask"])
        t = model.text_embedding(b["text_tokens"], b["text_mask"], deterministic=True, rng=None)
        logits = model.logit_scale * a @ t.T
        diag = jnp.diagonal(logits)
        rows = jax.nn.logsumexp(logits, axis=1) - diag
        cols = jax.nn.logsumexp(logits, axis=0) - diag
        return (rows.mean() + cols.mean()) / 2

    want_loss, want_grads = jax.value_and_grad(reference)(params)
    assert float(jnp.abs(want_grads["log_scale"].get_value())) > 1e-4
    for (loss, metrics), grads in results:
        assert abs(float(loss) - float(want_loss)) <= 1e-5 * abs(float(want_loss))
        assert float(metrics["contrastive_loss"]) == pytest.approx(float(want_loss), rel=1e-5)
        for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(w))))
