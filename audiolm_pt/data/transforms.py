"""Per-example numpy transforms of the input pipeline: crop/pad/repeat, SpecAugment, mixup, caption
sampling, caption tokens for encoder and decoder, multi-hot labels. Pure functions; randomness
comes in as a ``np.random.Generator``."""

from collections.abc import Mapping, Sequence

import numpy as np

MIXUP_CAPTION_JOINER = " and "


def crop_start(length: int, num_frames: int, rng: np.random.Generator | None) -> int:
    """First frame of a ``num_frames`` window of ``length`` frames: random when ``rng`` is
    given, else the centre (0 when it all fits)."""
    excess = length - num_frames
    if excess <= 0:
        return 0
    return int(rng.integers(0, excess + 1)) if rng is not None else excess // 2


def crop(features: np.ndarray, num_frames: int, rng: np.random.Generator | None) -> np.ndarray:
    """At most ``num_frames`` frames: a random window when ``rng`` is given, else the centre."""
    start = crop_start(len(features), num_frames, rng)
    return features[start : start + num_frames]


def repeat_to(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` looped end to end along its first axis up to ``length`` items (unchanged when it
    has that many): how a clip shorter than an encoder's receptive field is lengthened."""
    if len(x) >= length:
        return x
    return np.concatenate([x] * -(-length // len(x)))[:length]


def pad(features: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pads (or cuts) ``features`` to ``num_frames`` frames; returns (frames, valid mask)."""
    valid = min(len(features), num_frames)
    out = np.zeros((num_frames, features.shape[1]), np.float32)
    out[:valid] = features[:valid]
    return out, np.arange(num_frames) < valid


def spec_augment(
    features: np.ndarray,
    rng: np.random.Generator,
    time_masks: int,
    max_time_mask: int,
    freq_masks: int,
    max_freq_mask: int,
) -> np.ndarray:
    """SpecAugment without time warping: each mask has a width drawn uniformly from
    [0, max width] and is filled with the clip's mean, so it adds no level change."""
    out = np.array(features, np.float32)
    fill = out.mean() if out.size else 0.0
    for axis, count, max_width in ((0, time_masks, max_time_mask), (1, freq_masks, max_freq_mask)):
        size = out.shape[axis]
        for _ in range(count):
            width = int(rng.integers(0, min(max_width, size) + 1))
            start = int(rng.integers(0, size - width + 1))
            index = [slice(None), slice(None)]
            index[axis] = slice(start, start + width)
            out[tuple(index)] = fill
    return out


def mix_features(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """Mixes two log-mel clips as their power spectra would mix: log(w·e^a + (1-w)·e^b) where
    both have frames; the longer clip's tail is kept as it is."""
    out = np.array(a if len(a) >= len(b) else b, np.float32)
    n = min(len(a), len(b))
    out[:n] = np.logaddexp(np.log(weight) + a[:n], np.log1p(-weight) + b[:n])
    return out


def mix_waveforms(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """int16 segments of equal length added with amplitude weights sqrt(w) and sqrt(1 - w),
    so that (uncorrelated) powers mix with weights w and 1 - w; clipped to int16."""
    mixed = np.sqrt(weight) * a.astype(np.float64) + np.sqrt(1.0 - weight) * b
    return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)


def sample_caption(
    captions: Sequence[str | bytes],
    styles: Sequence[str | bytes],
    style_weights: Mapping[str, float],
    rng: np.random.Generator | None,
) -> str | None:
    """One caption, drawn with probability proportional to its style's weight (styles missing
    from ``style_weights`` weigh 0). Without ``rng`` (evaluation): the first caption of the
    heaviest style. None when no caption has positive weight."""
    weights = np.array([style_weights.get(as_str(s), 0.0) for s in styles], np.float64)
    if len(captions) != len(weights) or not len(weights) or weights.max() <= 0:
        return None
    if rng is None:
        return as_str(captions[int(np.argmax(weights))])
    return as_str(captions[int(rng.choice(len(weights), p=weights / weights.sum()))])


def caption_arrays(
    tokens: Sequence[int], max_len: int, pad_id: int, bos_id: int, eos_id: int
) -> dict[str, np.ndarray]:
    """Encoder tokens and the teacher-forcing pair, all padded/truncated to ``max_len``:
    encoder tokens = BOS + tokens + EOS (as BERT-style towers read [CLS] ... [SEP]; a caption
    too long keeps its first ``max_len - 2`` tokens), decoder inputs = BOS + tokens, targets =
    tokens + EOS (EOS is cut when the caption fills ``max_len``)."""
    if max_len < 3:
        raise ValueError(f"max_text_len={max_len}: room for BOS, EOS and a token needs >= 3")
    tokens = np.asarray(tokens, np.int32)
    encoder = np.concatenate([[bos_id], tokens[: max_len - 2], [eos_id]]).astype(np.int32)
    text = np.full(max_len, pad_id, np.int32)
    text[: len(encoder)] = encoder
    inputs = np.full(max_len, pad_id, np.int32)
    targets = np.full(max_len, pad_id, np.int32)
    decoder_len = min(len(tokens) + 1, max_len)
    inputs[:decoder_len] = np.concatenate([[bos_id], tokens])[:decoder_len]
    targets[:decoder_len] = np.concatenate([tokens, [eos_id]])[:decoder_len]
    positions = np.arange(max_len)
    return {
        "text_tokens": text,
        "text_mask": positions < len(encoder),
        "decoder_inputs": inputs,
        "decoder_targets": targets,
        "decoder_mask": positions < decoder_len,
    }


def multi_hot(labels: Sequence[str], vocab_index: Mapping[str, int]) -> np.ndarray:
    """Multi-hot over the tagging vocabulary; labels outside it are not part of the task."""
    out = np.zeros(len(vocab_index), np.float32)
    for label in labels:
        if label in vocab_index:
            out[vocab_index[label]] = 1.0
    return out


def as_str(value: str | bytes) -> str:
    """TFDS hands text features back as bytes."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
