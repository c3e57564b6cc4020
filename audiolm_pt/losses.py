"""Training losses: sharded InfoNCE and sigmoid losses, caption cross-entropy, tagging BCE.

The two contrastive losses run under `jax.shard_map` over the batch mesh axes. Each device
gathers both modalities' embeddings (O(B_global x J)) but forms only the logits of its own
rows, [B_local, B_global]; with `chunked=True` it walks the gathered embeddings one device's
block at a time under rematerialisation, so peak logit memory is [B_local, B_local]. Both give
the loss and gradients of the unsharded formula, because every term is a sum over rows and
the row normaliser (log-sum-exp) is assembled from per-block partial results.

The token-weighted losses return (sum, count) rather than a mean so that gradient
accumulation can divide once by the full batch's count.
"""

import logging

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, PartitionSpec

log = logging.getLogger(__name__)

Array = jax.Array
Metrics = dict[str, Array]

# Per-row partial results of blocks of columns add up, except the log-sum-exp.
_SUMMED = ("softplus", "sum", "sumsq")


def _row_reductions(logits: Array, keys: tuple[str, ...]) -> dict[str, Array]:
    fns = {
        "lse": lambda x: jax.nn.logsumexp(x, axis=-1),
        "softplus": lambda x: jnp.sum(jax.nn.softplus(x), axis=-1),
        "sum": lambda x: jnp.sum(lax.stop_gradient(x), axis=-1),
        "sumsq": lambda x: jnp.sum(lax.stop_gradient(x) ** 2, axis=-1),
    }
    out = {k: fns[k](logits) for k in keys if k != "argmax"}
    if "argmax" in keys:
        out["max"] = jnp.max(lax.stop_gradient(logits), axis=-1)
        out["argmax"] = jnp.argmax(logits, axis=-1)
    return out


def _rows_against(
    q: Array, k_all: Array, scale: Array, bias: Array, keys: tuple[str, ...], num_chunks: int
) -> dict[str, Array]:
    """Per-row reductions of the logits `scale * q @ k_all.T + bias`, optionally blockwise."""

    def block(k):
        return _row_reductions(scale * (q @ k.T) + bias, keys)

    if num_chunks == 1:
        return block(k_all)
    chunks = k_all.reshape(num_chunks, -1, k_all.shape[-1])
    partial = lax.map(jax.checkpoint(block), chunks)
    out = {k: jnp.sum(v, axis=0) for k, v in partial.items() if k in _SUMMED}
    if "lse" in keys:
        out["lse"] = jax.nn.logsumexp(partial["lse"], axis=0)
    if "argmax" in keys:
        best = jnp.argmax(partial["max"], axis=0)
        within = jnp.take_along_axis(partial["argmax"], best[None], axis=0)[0]
        out["argmax"] = best * chunks.shape[1] + within
    return out


def _pairwise(
    kind: str, a: Array, t: Array, scale: Array, bias: Array, axes: tuple[str, ...], chunked: bool
) -> tuple[Array, Metrics]:
    """Loss and metrics of one shard's rows; sums are global once psummed over `axes`."""
    gather = (lambda x: lax.all_gather(x, axes, tiled=True)) if axes else (lambda x: x)
    psum = (lambda x: lax.psum(x, axes)) if axes else (lambda x: x)
    a, t = a.astype(jnp.float32), t.astype(jnp.float32)
    a_all, t_all = gather(a), gather(t)
    local, total = a.shape[0], a_all.shape[0]
    num_chunks = total // local if chunked else 1
    pos = scale * jnp.sum(a * t, axis=-1) + bias
    main = ("lse" if kind == "contrastive" else "softplus", "argmax", "sum", "sumsq")
    rows = _rows_against(a, t_all, scale, bias, main, num_chunks)
    # The reverse direction only matters for InfoNCE's loss; for sigmoid it feeds a metric.
    t_keys = ("lse", "argmax") if kind == "contrastive" else ("argmax",)
    cols = _rows_against(t, a_all, scale, bias, t_keys, num_chunks)
    if kind == "contrastive":
        nll = jnp.sum(rows["lse"] - pos) + jnp.sum(cols["lse"] - pos)
        loss = psum(nll) / (2 * total)
    else:
        # -log sigmoid(x) on a positive equals softplus(-x) = softplus(x) - x, so summing
        # softplus over every pair and subtracting the positives' logits is exact.
        loss = psum(jnp.sum(rows["softplus"]) - jnp.sum(pos)) / total
    pos_sg = lax.stop_gradient(pos)
    # Global indices of this shard's rows, in the order all_gather(tiled=True) stacks them.
    own = (lax.axis_index(axes) if axes else 0) * local + jnp.arange(local)
    n_pairs = total * total
    logit_sum, pos_sum = psum(jnp.sum(rows["sum"])), psum(jnp.sum(pos_sg))
    mean = logit_sum / n_pairs
    metrics = {
        "loss": loss,
        "a2t_top1": psum(jnp.sum(rows["argmax"] == own)) / total,
        "t2a_top1": psum(jnp.sum(cols["argmax"] == own)) / total,
        "logit_mean": mean,
        "logit_std": jnp.sqrt(jnp.maximum(psum(jnp.sum(rows["sumsq"])) / n_pairs - mean**2, 0.0)),
        "pos_logit_mean": pos_sum / total,
        "neg_logit_mean": (logit_sum - pos_sum) / max(n_pairs - total, 1),
        "temperature": 1.0 / lax.stop_gradient(scale),
    }
    if kind == "sigmoid":
        metrics["bias"] = lax.stop_gradient(bias)
    return loss, metrics


def _sharded(
    kind: str,
    a: Array,
    t: Array,
    scale: Array,
    bias: Array,
    mesh: Mesh | None,
    batch_axes: tuple[str, ...],
    chunked: bool,
) -> tuple[Array, Metrics]:
    if a.shape != t.shape or a.ndim != 2:
        raise ValueError(f"embeddings must both be [B, J]; got {a.shape} and {t.shape}")
    mesh = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
    if mesh.empty:
        if jax.device_count() > 1:
            log.warning("%s loss traced without a mesh: computing the global logits", kind)
        return _pairwise(kind, a, t, scale, bias, (), chunked)
    axes = tuple(ax for ax in batch_axes if ax in mesh.axis_names)
    shards = 1
    for ax in axes:
        shards *= mesh.shape[ax]
    if a.shape[0] % shards:
        raise ValueError(f"batch {a.shape[0]} is not divisible by the {shards} batch shards")
    rows, rep = PartitionSpec(axes or None), PartitionSpec()

    def body(a, t, scale, bias):
        return _pairwise(kind, a, t, scale, bias, axes, chunked)

    fn = jax.shard_map(body, mesh=mesh, in_specs=(rows, rows, rep, rep), out_specs=(rep, rep))
    return fn(a, t, jnp.asarray(scale, jnp.float32), jnp.asarray(bias, jnp.float32))


def contrastive_loss(
    audio_emb: Array,
    text_emb: Array,
    scale: Array | float,
    *,
    mesh: Mesh | None = None,
    batch_axes: tuple[str, ...],
    chunked: bool = False,
) -> tuple[Array, Metrics]:
    """Symmetric InfoNCE over the global batch, mean of audio->text and text->audio.

    `scale` is the inverse temperature (pass a stop-gradient constant for a fixed tau).
    `mesh` defaults to the context mesh (`jax.set_mesh`); with none the loss runs unsharded.
    `batch_axes`: the mesh axes the batch is split over (the sharding rules' `batch` entry).
    """
    return _sharded("contrastive", audio_emb, text_emb, scale, 0.0, mesh, batch_axes, chunked)


def sigmoid_loss(
    audio_emb: Array,
    text_emb: Array,
    scale: Array | float,
    bias: Array | float,
    *,
    mesh: Mesh | None = None,
    batch_axes: tuple[str, ...],
    chunked: bool = False,
) -> tuple[Array, Metrics]:
    """SigLIP loss: sum over all B^2 pairs of -log sigmoid(+-(scale * a.t + bias)), over B."""
    return _sharded("sigmoid", audio_emb, text_emb, scale, bias, mesh, batch_axes, chunked)


def caption_xent(
    logits: Array, targets: Array, mask: Array, label_smoothing: float = 0.0
) -> tuple[Array, Array, Array]:
    """Label-smoothed token cross-entropy: (sum over counted tokens, token count, correct).

    The smoothed target puts 1 - eps on the label and eps / V on every entry, so the loss is
    lse - (1 - eps) * logit[label] - eps * mean(logits), computed without a dense [B, L, V]
    target array.
    """
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    label_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    eps = label_smoothing
    per_token = lse - (1.0 - eps) * label_logit - eps * jnp.mean(logits, axis=-1)
    weights = mask.astype(jnp.float32)
    correct = (jnp.argmax(logits, axis=-1) == targets) * weights
    return jnp.sum(per_token * weights), jnp.sum(weights), lax.stop_gradient(jnp.sum(correct))


def tagging_bce(logits: Array, labels: Array) -> tuple[Array, Array]:
    """Multi-label binary cross-entropy: (sum over examples and labels, element count)."""
    per_label = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), labels)
    return jnp.sum(per_label), jnp.asarray(per_label.size, jnp.float32)
