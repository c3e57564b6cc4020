"""Deterministic batched inference for evaluators and the API: audio in fixed windows, text
in fixed-length token arrays, every call jitted at one padded batch shape.

A clip longer than the encoder's window (`audio.max_frames`) is cut into consecutive
non-overlapping windows (the last one shorter and masked); its frame features are the
windows' tokens in time order and its embedding the L2-normalised mean of the window
embeddings weighted by valid frames. Because every batch is padded to the same shape and
nothing mixes rows, a clip's outputs do not depend on what it is batched with.
"""

import dataclasses
import logging
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt.data import transforms
from audiolm_pt.inference.beam_search import beam_search
from audiolm_pt.models.heads import masked_mean
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.text import Tokenizer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One clip: frames [N, D] (valid tokens only), times [N] (token centres, seconds),
    mean-pooled frames [D], the joint-space embedding [E] (None without audio head), and per
    encoder stage (`AudioEncoder.hidden_states`) its tokens' mean and standard deviation over
    the clip [depth + 1, 2 D] (None for a Zipformer or a hand-crafted baseline)."""

    frames: np.ndarray
    times: np.ndarray
    pooled: np.ndarray
    embedding: np.ndarray | None
    stage_stats: np.ndarray | None = None


def _stage_stats(moments: np.ndarray, count: int) -> np.ndarray:
    """[depth + 1, 2, D] token sums and sums of squares over `count` tokens -> [depth + 1, 2 D]:
    each stage's mean, then its (population) standard deviation."""
    mean = moments[:, 0] / count
    std = np.sqrt(np.maximum(moments[:, 1] / count - mean * mean, 0.0))
    return np.concatenate([mean, std], axis=1).astype(np.float32)


def windows(features: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive non-overlapping windows of at most `size` frames covering `features`."""
    if len(features) == 0:
        raise ValueError("no frames")
    return [features[i : i + size] for i in range(0, len(features), size)]


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return (
        np.concatenate([x, np.zeros((rows - len(x), *x.shape[1:]), x.dtype)])
        if len(x) < rows
        else x
    )


class Inference:
    """Encodes audio features and texts with `model`, `batch_size` rows per device call."""

    def __init__(
        self,
        model: AudioTextModel,
        tokenizer: Tokenizer | None = None,
        *,
        max_text_len: int = 32,
        batch_size: int = 16,
    ):
        self.model_cfg = model.cfg
        self.tokenizer = tokenizer
        self.max_text_len = max_text_len
        self.batch_size = batch_size
        self.window = model.cfg.audio.max_frames
        self.min_frames = model.cfg.audio.min_frames
        self.encoder = model.audio_encoder
        self.has_audio_head = model.audio_proj is not None
        self.has_text = model.text_encoder is not None and tokenizer is not None
        self.has_decoder = model.decoder is not None and tokenizer is not None
        graphdef, state = nnx.split(model)
        self._graphdef, self._state = graphdef, state
        self._audio = jax.jit(self._audio_fn)
        self._text = jax.jit(self._text_fn)
        self._logprob = jax.jit(self._logprob_fn)
        self._generators: dict[tuple[int, int, float], Callable] = {}

    def _merge(self, state) -> AudioTextModel:
        return nnx.merge(self._graphdef, state)

    def _audio_fn(self, state, features, mask):
        model = self._merge(state)
        moments = None
        if self.encoder.has_stages:
            states, frame_mask = model.audio_encoder.hidden_states(features, mask)
            frames = states[-1]
            # Per stage and row, the valid tokens' sum and sum of squares: [B, depth + 1, 2, D].
            valid = frame_mask[None, :, :, None].astype(jnp.float32)
            states = states.astype(jnp.float32) * valid
            moments = jnp.stack([states.sum(2), (states * states).sum(2)], axis=2)
            moments = moments.transpose(1, 0, 2, 3)
        else:
            frames, frame_mask = model.encode_audio(features, mask)
        pooled = masked_mean(frames, frame_mask).astype(jnp.float32)
        embedding = model.audio_embedding(frames, frame_mask) if self.has_audio_head else pooled
        return frames.astype(jnp.float32), frame_mask, pooled, embedding, moments

    def _text_fn(self, state, tokens, mask):
        return self._merge(state).text_embedding(tokens, mask)

    def _logprob_fn(self, state, features, mask, inputs, targets, target_mask):
        """One clip ([1, W, M]) encoded once and shared by every text row."""
        model = self._merge(state)
        frames, frame_mask = model.encode_audio(features, mask)
        rows = inputs.shape[0]
        frames = jnp.broadcast_to(frames, (rows, *frames.shape[1:]))
        frame_mask = jnp.broadcast_to(frame_mask, (rows, *frame_mask.shape[1:]))
        parallel = jnp.zeros((inputs.shape[0],), bool)
        logits = model.caption_logits(frames, frame_mask, inputs, target_mask, parallel)
        logp = jax.nn.log_softmax(logits, axis=-1)
        picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
        return jnp.sum(jnp.where(target_mask, picked, 0.0), axis=-1)

    def _lengthened(self, feature_list: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each clip, looped up to the encoder's receptive field when shorter (logged)."""
        clips = [np.asarray(f, np.float32) for f in feature_list]
        short = sum(len(f) < self.min_frames for f in clips)
        if short:
            log.warning(
                "%d clip(s) shorter than the audio encoder's %d-frame receptive field: looped "
                "up to it",
                short,
                self.min_frames,
            )
        return [transforms.repeat_to(f, self.min_frames) for f in clips]

    def _centre_window(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A lengthened clip's centre window, padded: (features [W, M], mask [W])."""
        return transforms.pad(transforms.crop(features, self.window, None), self.window)

    def _window_batches(self, feature_list: Sequence[np.ndarray]):
        """Yields (features [B, W, M], mask [B, W], rows) over all windows of all clips."""
        pieces = [w for f in feature_list for w in windows(f, self.window)]
        for start in range(0, len(pieces), self.batch_size):
            chunk = pieces[start : start + self.batch_size]
            padded = [transforms.pad(w, self.window) for w in chunk]
            feats = _pad_rows(np.stack([p for p, _ in padded]), self.batch_size)
            mask = _pad_rows(np.stack([m for _, m in padded]), self.batch_size)
            yield feats, mask, len(chunk)

    def encode(self, feature_list: Sequence[np.ndarray]) -> list[Encoded]:
        """Encodes each clip's log-mel features [T, n_mels]. A last window shorter than the
        encoder's receptive field adds no frames."""
        feature_list = self._lengthened(feature_list)
        outs = []
        for feats, mask, rows in self._window_batches(feature_list):
            result = jax.device_get(self._audio(self._state, feats, mask))
            outs.extend(tuple(None if x is None else x[i] for x in result) for i in range(rows))
        hop = self.window * self.encoder.cfg.input_hop_ms / 1000.0
        encoded, k = [], 0
        for f in feature_list:
            count = -(-len(f) // self.window)
            parts, k = outs[k : k + count], k + count
            frames, times, weights, embs = [], [], [], []
            for w, (fr, fm, _, emb, _) in enumerate(parts):
                frames.append(fr[fm])
                times.append(self.encoder.token_times(len(fm))[fm] + w * hop)
                weights.append(fm.sum())
                embs.append(emb)
            stage_stats = None
            if self.encoder.has_stages:
                stage_stats = _stage_stats(sum(np.float64(p[4]) for p in parts), sum(weights))
            weights = np.asarray(weights, np.float64) / np.sum(weights)
            frames_all = np.concatenate(frames)
            emb = np.tensordot(weights, np.stack(embs), axes=1).astype(np.float32)
            if self.has_audio_head:
                emb = emb / max(np.linalg.norm(emb), 1e-6)
            encoded.append(
                Encoded(
                    frames=frames_all,
                    times=np.concatenate(times),
                    pooled=frames_all.mean(axis=0),
                    embedding=emb if self.has_audio_head else None,
                    stage_stats=stage_stats,
                )
            )
        return encoded

    def _tokens(self, texts: Sequence[str]) -> list[list[int]]:
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer (data.pipeline.tokenizer is empty)")
        return [self.tokenizer.encode(t)[: self.max_text_len] for t in texts]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised joint-space embeddings [n, E] of `texts`."""
        if not self.has_text:
            raise ValueError(f"objective={self.model_cfg.objective!r} has no text encoder")
        out = []
        ids = self._tokens(texts)
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            tok = self.tokenizer
            arrays = [
                transforms.caption_arrays(t, self.max_text_len, tok.pad_id, tok.bos_id, tok.eos_id)
                for t in chunk
            ]
            tokens = _pad_rows(np.stack([a["text_tokens"] for a in arrays]), self.batch_size)
            mask = _pad_rows(np.stack([a["text_mask"] for a in arrays]), self.batch_size)
            out.append(np.asarray(self._text(self._state, tokens, mask))[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, self.model_cfg.heads.joint_dim))

    def caption_logprob(self, features: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Sum of token log-probabilities (EOS included) of each text under the decoder given
        one clip's centre window: [len(texts)]."""
        if not self.has_decoder:
            raise ValueError(f"objective={self.model_cfg.objective!r} has no caption decoder")
        tok = self.tokenizer
        feats, mask = self._centre_window(self._lengthened([features])[0])
        out = []
        ids = self._tokens(texts)
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            arrays = [
                transforms.caption_arrays(t, self.max_text_len, tok.pad_id, tok.bos_id, tok.eos_id)
                for t in chunk
            ]
            stacked = {
                k: _pad_rows(np.stack([a[k] for a in arrays]), self.batch_size)
                for k in ("decoder_inputs", "decoder_targets", "decoder_mask")
            }
            scores = self._logprob(
                self._state,
                feats[None],
                mask[None],
                stacked["decoder_inputs"],
                stacked["decoder_targets"],
                stacked["decoder_mask"],
            )
            out.append(np.asarray(scores)[: len(chunk)])
        return np.concatenate(out)

    def _centre_windows(self, features: Sequence[np.ndarray]):
        """Yields (features [B, W, M], mask [B, W], rows): each clip's centre window."""
        for start in range(0, len(features), self.batch_size):
            chunk = features[start : start + self.batch_size]
            padded = [self._centre_window(f) for f in chunk]
            feats = _pad_rows(np.stack([p for p, _ in padded]), self.batch_size)
            mask = _pad_rows(np.stack([m for _, m in padded]), self.batch_size)
            yield feats, mask, len(chunk)

    def generate(
        self,
        features: Sequence[np.ndarray],
        beam: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Caption token ids (up to EOS, which is dropped) for each clip's centre window, by
        beam search over the KV cache (beam=1: greedy)."""
        if not self.has_decoder:
            raise ValueError(f"objective={self.model_cfg.objective!r} has no caption decoder")
        max_length = max_length or self.max_text_len
        key = (beam, max_length, length_penalty)
        if key not in self._generators:

            def fn(state, feats, mask):
                model = self._merge(state)
                frames, frame_mask = model.encode_audio(feats, mask)
                return beam_search(
                    model.decoder, frames, frame_mask, max_length, beam, length_penalty
                )

            self._generators[key] = jax.jit(fn)
        eos = self.tokenizer.eos_id
        out = []
        for feats, mask, rows in self._centre_windows(self._lengthened(features)):
            for seq in np.asarray(self._generators[key](self._state, feats, mask))[:rows].tolist():
                out.append(seq[: seq.index(eos)] if eos in seq else seq)
        return out
