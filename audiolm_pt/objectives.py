"""Training objectives: `loss_fn(model, batch, cfg, rng) -> (loss, metrics)`.

An objective is split in three so that gradient accumulation can reuse the pieces:
`prepare` draws the batch-level randomness (CapPa parallel flags) once for the whole batch,
`forward` runs the model on a (micro)batch and returns per-example embeddings plus summed,
token-weighted loss terms, and `combine` turns those into the loss and metrics. Every loss
term `combine` reads from the sums is linear in them (sum / count with batch-only counts), and
the contrastive terms read only the embeddings; `grad_accum` relies on both facts.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from audiolm_pt import losses, sharding
from audiolm_pt.models.config import OBJECTIVES

Array = jax.Array
Batch = dict[str, Array]
Outputs = dict[str, Array]

EMBEDDINGS = ("audio_emb", "text_emb")
PARALLEL = "parallel"
# Batch key of a locked text tower's pooled outputs, standing in for the caption tokens.
TEXT_FEATURES = "text_features"


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """What the loss computes; the model config decides which parts exist.

    `parallel_fraction` is the probability that a caption example is decoded CapPa-style in
    parallel from all-[MASK] inputs. `chunked` makes the contrastive losses walk the gathered
    embeddings one device block at a time.
    """

    objective: str = "contrastive"
    label_smoothing: float = 0.1
    parallel_fraction: float = 0.0
    contrastive_weight: float = 1.0
    caption_weight: float = 1.0
    chunked: bool = False
    # The mesh axes the batch is split over: the trainer sets them from the sharding rules.
    batch_axes: tuple[str, ...] = sharding.batch_rule_axes(sharding.ShardingConfig())

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}: expected one of {OBJECTIVES}")
        for key in ("label_smoothing", "parallel_fraction"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key}={getattr(self, key)} must be in [0, 1]")
        for key in ("contrastive_weight", "caption_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")

    @property
    def uses_embeddings(self) -> bool:
        return self.objective in ("contrastive", "siglip", "hybrid")

    @property
    def uses_captions(self) -> bool:
        return self.objective in ("captioning", "hybrid")


def prepare(batch: Batch, cfg: ObjectiveConfig, rng: Array) -> Batch:
    """Adds the per-example CapPa `parallel` flags (bool [B]) for caption objectives."""
    if not cfg.uses_captions:
        return batch
    size = batch["decoder_inputs"].shape[0]
    return {**batch, PARALLEL: jax.random.bernoulli(rng, cfg.parallel_fraction, (size,))}


def counts(batch: Batch, cfg: ObjectiveConfig) -> Outputs:
    """The denominators of the token-weighted terms; they depend on the batch only."""
    out = {}
    if cfg.uses_captions:
        out["caption_count"] = jnp.sum(batch["decoder_mask"].astype(jnp.float32))
    if cfg.objective == "tagging":
        out["tag_count"] = jnp.asarray(batch["labels"].size, jnp.float32)
    return out


def _keys(rng: Array | None, deterministic: bool) -> tuple[Array | None, ...]:
    if deterministic:
        return (None, None, None)
    return tuple(jax.random.split(rng, 3))


def embed(
    model: nnx.Module, batch: Batch, rng: Array | None, *, deterministic: bool
) -> tuple[Array, Array]:
    """(audio, text) embeddings [B, J], exactly as `forward` computes them for this rng."""
    audio_key, text_key, _ = _keys(rng, deterministic)
    frames, frame_mask = model.encode_audio(
        batch["features"], batch["feature_mask"], deterministic=deterministic, rng=audio_key
    )
    return _embeddings(model, batch, frames, frame_mask, text_key, deterministic)


def _embeddings(model, batch, frames, frame_mask, text_key, deterministic):
    audio = model.audio_embedding(frames, frame_mask)
    if TEXT_FEATURES in batch:  # a locked text tower's cached outputs
        return audio, model.project_text(batch[TEXT_FEATURES])
    text = model.text_embedding(
        batch["text_tokens"], batch["text_mask"], deterministic=deterministic, rng=text_key
    )
    return audio, text


def forward(
    model: nnx.Module,
    batch: Batch,
    cfg: ObjectiveConfig,
    rng: Array | None,
    *,
    deterministic: bool,
) -> Outputs:
    """Embeddings (per example) and summed loss terms of one prepared (micro)batch."""
    audio_key, text_key, decoder_key = _keys(rng, deterministic)
    frames, frame_mask = model.encode_audio(
        batch["features"], batch["feature_mask"], deterministic=deterministic, rng=audio_key
    )
    out = counts(batch, cfg)
    if cfg.uses_embeddings:
        audio, text = _embeddings(model, batch, frames, frame_mask, text_key, deterministic)
        out.update(audio_emb=audio, text_emb=text)
    if cfg.uses_captions:
        logits = model.caption_logits(
            frames,
            frame_mask,
            batch["decoder_inputs"],
            batch["decoder_mask"],
            batch[PARALLEL],
            deterministic=deterministic,
            rng=decoder_key,
        )
        total, _, correct = losses.caption_xent(
            logits, batch["decoder_targets"], batch["decoder_mask"], cfg.label_smoothing
        )
        out.update(caption_sum=total, caption_correct=correct)
    if cfg.objective == "tagging":
        total, _ = losses.tagging_bce(model.tag_logits(frames, frame_mask), batch["labels"])
        out["tag_sum"] = total
    return out


def combine(model: nnx.Module, out: Outputs, cfg: ObjectiveConfig) -> tuple[Array, dict]:
    """Loss and metrics from the outputs of the whole batch."""
    metrics: dict[str, Array] = {}
    loss = jnp.zeros((), jnp.float32)
    if cfg.uses_embeddings:
        a, t = out["audio_emb"], out["text_emb"]
        if cfg.objective == "siglip":
            part, m = losses.sigmoid_loss(
                a,
                t,
                model.logit_scale,
                model.siglip_bias,
                batch_axes=cfg.batch_axes,
                chunked=cfg.chunked,
            )
        else:
            part, m = losses.contrastive_loss(
                a, t, model.logit_scale, batch_axes=cfg.batch_axes, chunked=cfg.chunked
            )
        m[f"{'sigmoid' if cfg.objective == 'siglip' else 'contrastive'}_loss"] = m.pop("loss")
        metrics.update(m)
        loss += (cfg.contrastive_weight if cfg.objective == "hybrid" else 1.0) * part
    if cfg.uses_captions:
        count = jnp.maximum(out["caption_count"], 1.0)
        part = out["caption_sum"] / count
        metrics.update(caption_loss=part, caption_accuracy=out["caption_correct"] / count)
        loss += (cfg.caption_weight if cfg.objective == "hybrid" else 1.0) * part
    if cfg.objective == "tagging":
        part = out["tag_sum"] / out["tag_count"]
        metrics["tagging_loss"] = part
        loss += part
    metrics["loss"] = loss
    return loss, metrics


def loss_fn(
    model: nnx.Module,
    batch: Batch,
    cfg: ObjectiveConfig,
    rng: Array,
    *,
    deterministic: bool = False,
) -> tuple[Array, dict]:
    """The objective's loss and metrics on one batch (contrastive losses sharded over the
    context mesh, see `losses`)."""
    prep_key, fwd_key = jax.random.split(rng)
    batch = prepare(batch, cfg, prep_key)
    return combine(model, forward(model, batch, cfg, fwd_key, deterministic=deterministic), cfg)
