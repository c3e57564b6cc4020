"""Sharded contrastive losses against the plain formulas; caption and tagging losses."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from audiolm_pt import losses, sharding

B, J = 16, 8
MESHES = {
    "none": None,
    "8x1x1": sharding.ShardingConfig(),
    "2x2x2": sharding.ShardingConfig(ici_data=2, ici_fsdp=2, ici_tensor=2),
    "1x8x1": sharding.ShardingConfig(ici_data=1, ici_fsdp=-1),
    # The batch split over fsdp only (data replicates it): the loss follows the rule.
    "2x4x1 batch=fsdp": sharding.ShardingConfig(
        ici_data=2,
        ici_fsdp=4,
        rules=tuple(
            (name, "fsdp" if name == sharding.BATCH else axes)
            for name, axes in sharding.DEFAULT_RULES
        ),
    ),
}
# The default rules' batch axes.
AXES = sharding.batch_rule_axes(sharding.ShardingConfig())


def _rel(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-12))


@functools.cache
def _embeddings():
    ka, kt = jax.random.split(jax.random.key(42))
    a = jax.random.normal(ka, (B, J))
    # Correlated pairs, so positives are not random and accuracy is neither 0 nor 1.
    t = a + 1.2 * jax.random.normal(kt, (B, J))
    unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    return unit(a), unit(t)


def _ref_infonce(a, t, scale):
    logits = scale * a @ t.T
    labels = jnp.arange(a.shape[0])
    a2t = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    t2a = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()
    return (a2t + t2a) / 2


def _ref_sigmoid(a, t, scale, bias):
    logits = scale * a @ t.T + bias
    z = 2 * jnp.eye(a.shape[0]) - 1
    return -jnp.sum(jax.nn.log_sigmoid(z * logits)) / a.shape[0]


def _mesh(name):
    cfg = MESHES[name]
    return None if cfg is None else sharding.make_mesh(cfg)


@pytest.mark.parametrize("mesh_name", list(MESHES))
def test_sharded_losses_equal_reference_loss_and_gradients(mesh_name):
    """InfoNCE and sigmoid, chunked or not: loss and d/d(audio, text, scale[, bias])."""
    a, t = _embeddings()
    scale, bias = jnp.float32(1 / 0.07), jnp.float32(-10.0)
    mesh = _mesh(mesh_name)
    cfg = MESHES[mesh_name]
    axes = sharding.batch_rule_axes(cfg) if cfg else ()
    kw = {"mesh": mesh, "batch_axes": axes}

    def sharded(a, t, s, b):
        out = {}
        for chunked in (False, True):
            infonce = functools.partial(losses.contrastive_loss, **kw, chunked=chunked)
            sigmoid = functools.partial(losses.sigmoid_loss, **kw, chunked=chunked)
            out["infonce", chunked] = jax.value_and_grad(
                lambda *x, f=infonce: f(*x)[0], argnums=(0, 1, 2)
            )(a, t, s)
            out["sigmoid", chunked] = jax.value_and_grad(
                lambda *x, f=sigmoid: f(*x)[0], argnums=(0, 1, 2, 3)
            )(a, t, s, b)
        return out

    got = jax.jit(sharded)(a, t, scale, bias)
    want = {
        "infonce": jax.value_and_grad(_ref_infonce, argnums=(0, 1, 2))(a, t, scale),
        "sigmoid": jax.value_and_grad(_ref_sigmoid, argnums=(0, 1, 2, 3))(a, t, scale, bias),
    }
    for (kind, chunked), (value, grads) in got.items():
        want_value, want_grads = want[kind]
        assert _rel(value, want_value) <= 1e-5, (kind, chunked)
        for i, (g, w) in enumerate(zip(grads, want_grads, strict=True)):
            assert float(jnp.max(jnp.abs(w))) > 0
            assert _rel(g, w) <= 1e-5, (kind, chunked, i)


def test_context_mesh_is_used_when_none_is_passed():
    a, t = _embeddings()
    mesh = _mesh("2x2x2")
    with jax.set_mesh(mesh):
        got = jax.jit(lambda a, t: losses.sigmoid_loss(a, t, 3.0, -1.0, batch_axes=AXES)[0])(a, t)
    assert _rel(got, _ref_sigmoid(a, t, 3.0, -1.0)) <= 1e-5


@pytest.mark.parametrize("kind", ["contrastive", "sigmoid"])
def test_metrics_match_numpy(kind):
    a, t = _embeddings()
    scale, bias = 5.0, (-2.0 if kind == "sigmoid" else 0.0)
    mesh = _mesh("2x2x2")

    def both(a, t):
        if kind == "contrastive":
            return [
                losses.contrastive_loss(a, t, scale, mesh=mesh, batch_axes=AXES, chunked=c)[1]
                for c in (0, 1)
            ]
        return [
            losses.sigmoid_loss(a, t, scale, bias, mesh=mesh, batch_axes=AXES, chunked=c)[1]
            for c in (0, 1)
        ]

    for m in jax.jit(both)(a, t):
        _check_metrics(m, a, t, scale, bias)


def _check_metrics(m, a, t, scale, bias):
    logits = scale * np.asarray(a, np.float64) @ np.asarray(t, np.float64).T + bias
    diag = np.eye(B, dtype=bool)
    a2t = np.mean(np.argmax(logits, axis=1) == np.arange(B))
    t2a = np.mean(np.argmax(logits, axis=0) == np.arange(B))
    assert 0 < a2t < 1
    assert 0 < t2a < 1
    np.testing.assert_allclose(m["a2t_top1"], a2t)
    np.testing.assert_allclose(m["t2a_top1"], t2a)
    np.testing.assert_allclose(m["logit_mean"], logits.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m["logit_std"], logits.std(), rtol=1e-4)
    np.testing.assert_allclose(m["pos_logit_mean"], logits[diag].mean(), rtol=1e-5)
    np.testing.assert_allclose(m["neg_logit_mean"], logits[~diag].mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m["temperature"], 1 / scale, rtol=1e-6)


def test_chunking_shrinks_peak_logit_memory():
    """Chunked: [B_local, B_local] blocks; unchunked: [B_local, B_global] rows."""
    mesh = _mesh("8x1x1")
    n = 8 * 256
    a = jax.ShapeDtypeStruct((n, 4), jnp.float32)

    def temp_bytes(chunked):
        def fn(a, t):
            return losses.contrastive_loss(a, t, 10.0, mesh=mesh, batch_axes=AXES, chunked=chunked)[
                0
            ]

        compiled = jax.jit(jax.grad(fn, argnums=(0, 1))).lower(a, a).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    full_rows = 256 * n * 4
    assert temp_bytes(False) >= full_rows
    assert temp_bytes(True) < full_rows / 2


def test_batch_not_divisible_by_shards_is_refused():
    a, t = _embeddings()
    with pytest.raises(ValueError, match="not divisible by the 8 batch shards"):
        losses.contrastive_loss(a[:12], t[:12], 1.0, mesh=_mesh("8x1x1"), batch_axes=AXES)


def test_caption_xent_matches_dense_label_smoothing():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    vocab = 11
    logits = 3 * jax.random.normal(k1, (3, 5, vocab))
    targets = jax.random.randint(k2, (3, 5), 0, vocab)
    mask = jax.random.bernoulli(k3, 0.7, (3, 5))
    for eps in (0.0, 0.1):
        total, count, correct = losses.caption_xent(logits, targets, mask, eps)
        dense = optax.smooth_labels(jax.nn.one_hot(targets, vocab), eps)
        per_token = optax.softmax_cross_entropy(logits, dense)
        np.testing.assert_allclose(total, jnp.sum(per_token * mask), rtol=1e-5)
        assert float(count) == float(mask.sum())
        want_correct = np.sum((np.argmax(logits, -1) == np.asarray(targets)) & np.asarray(mask))
        assert float(correct) == want_correct


def test_tagging_bce_matches_formula():
    logits = jnp.array([[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]])
    labels = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    total, count = losses.tagging_bce(logits, labels)
    x, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    p = 1 / (1 + np.exp(-x))
    want = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum()
    np.testing.assert_allclose(total, want, rtol=1e-6)
    assert float(count) == 6
