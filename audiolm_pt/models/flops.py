"""Analytic forward FLOPs per example (2 per multiply-add; matmuls, convolutions and
attention score/value products), for model FLOPs utilisation. Training costs about three
times the forward pass (`train_flops_per_example`).
"""

import math

from audiolm_pt.models.audio_encoder import kept_tokens
from audiolm_pt.models.config import (
    AudioEncoderConfig,
    DecoderConfig,
    HeadConfig,
    ModelConfig,
    TextEncoderConfig,
    TransformerConfig,
    ZipformerConfig,
)


def audio_num_tokens(cfg: AudioEncoderConfig, num_frames: int) -> int:
    """Number of tokens the audio encoder outputs for `num_frames` input frames."""
    if cfg.encoder == "zipformer":
        return math.ceil(_embed_frames(num_frames) / cfg.zipformer.output_downsampling)
    if cfg.frontend == "conv":
        return math.ceil(math.ceil(num_frames / 2) / 2)
    return math.ceil(num_frames / cfg.patch_time) * (cfg.n_mels // cfg.patch_freq)


def _stack_flops(t: TransformerConfig, n: int) -> float:
    """Self-attention encoder layers over n tokens."""
    d = t.width
    per_layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * t.mlp_dim
    return 2.0 * t.depth * per_layer


def _embed_frames(num_frames: int) -> int:
    return (num_frames - 7) // 2


def _zipformer_layer_flops(z: ZipformerConfig, stack: int, n: int) -> float:
    """Multiply-adds of one layer over n frames: projections, the attention weights'
    content and positional scores, the three mixings by them, convolutions, feed-forwards."""
    d, f, heads, k = z.dims[stack], z.ff_dims[stack], z.heads[stack], z.kernels[stack]
    qk, pos, v, h = z.query_head_dim, z.pos_head_dim, z.value_head_dim, 3 * d // 4
    weights = n * d * heads * (2 * qk + pos) + (2 * n - 1) * z.pos_dim * heads * pos
    weights += heads * n * n * qk + heads * n * (2 * n - 1) * pos
    self_attn = 2 * (2 * n * d * heads * v + heads * n * n * v)
    nonlin = 4 * n * d * h + n * n * h
    conv = 2 * (3 * n * d * d + n * d * k)
    feed_forward = 2 * n * d * (3 * f // 4 + f + 5 * f // 4)
    return weights + self_attn + nonlin + conv + feed_forward


def zipformer_flops(cfg: AudioEncoderConfig, num_frames: int) -> float:
    z = cfg.zipformer
    c1, c2, c3 = z.embed_channels
    t1, f1 = (num_frames - 3) // 2, (cfg.n_mels - 3) // 2 + 1
    t2, f2 = _embed_frames(num_frames), (f1 - 3) // 2 + 1
    embed = (num_frames - 2) * cfg.n_mels * 9 * c1 + t1 * f1 * 9 * c1 * c2
    embed += t2 * f2 * (9 * c2 * c3 + 49 * c3 + 6 * c3 * c3) + t2 * c3 * f2 * z.dims[0]
    stacks = sum(
        z.num_layers[i] * _zipformer_layer_flops(z, i, math.ceil(t2 / z.downsampling[i]))
        for i in range(len(z.dims))
    )
    return 2.0 * (embed + stacks)


def audio_tokens_seen(cfg: AudioEncoderConfig, num_frames: int, train: bool) -> int:
    """Tokens the layers after the front end see: in training, those token dropout keeps."""
    n = audio_num_tokens(cfg, num_frames)
    return kept_tokens(cfg.token_keep, n) if train else n


def audio_encoder_flops(cfg: AudioEncoderConfig, num_frames: int, train: bool = False) -> float:
    if cfg.encoder == "zipformer":
        return zipformer_flops(cfg, num_frames)
    d = cfg.transformer.width
    n = audio_num_tokens(cfg, num_frames)
    if cfg.frontend == "conv":
        c = cfg.conv_channels
        t1, f1 = math.ceil(num_frames / 2), math.ceil(cfg.n_mels / 2)
        t2, f2 = math.ceil(t1 / 2), math.ceil(f1 / 2)
        front = 2.0 * (t1 * f1 * 9 * c + t2 * f2 * 9 * c * c + t2 * c * f2 * d)
    else:
        front = 2.0 * n * cfg.patch_time * cfg.patch_freq * d
    return front + _stack_flops(cfg.transformer, audio_tokens_seen(cfg, num_frames, train))


def text_encoder_flops(cfg: TextEncoderConfig, num_tokens: int) -> float:
    return _stack_flops(cfg.transformer, num_tokens)


def decoder_flops(
    cfg: DecoderConfig, num_tokens: int, num_audio_tokens: int, audio_width: int
) -> float:
    """Teacher-forced decoder over num_tokens, including the vocabulary projection."""
    t = cfg.transformer
    d, n, m = t.width, num_tokens, num_audio_tokens
    self_attn = 4 * n * d * d + 2 * n * n * d
    cross = 2 * n * d * d + 2 * m * audio_width * d + 2 * n * m * d
    mlp = 2 * n * d * t.mlp_dim
    return 2.0 * (t.depth * (self_attn + cross + mlp) + n * d * cfg.vocab_size)


def projection_flops(cfg: HeadConfig, in_dim: int) -> float:
    return 2.0 * (in_dim * cfg.joint_dim + (cfg.projection_depth - 1) * cfg.joint_dim**2)


def model_flops(
    cfg: ModelConfig, num_frames: int, num_tokens: int, train: bool = False
) -> dict[str, float]:
    """Forward FLOPs per example of each part the objective uses, and their `total`; with
    `train`, over the audio tokens that token dropout keeps."""
    a = cfg.audio.transformer.width
    n_audio = audio_tokens_seen(cfg.audio, num_frames, train)
    parts = {"audio_encoder": audio_encoder_flops(cfg.audio, num_frames, train)}
    if cfg.has_text_encoder:
        parts["text_encoder"] = text_encoder_flops(cfg.text, num_tokens)
        parts["heads"] = projection_flops(cfg.heads, a) + projection_flops(
            cfg.heads, cfg.text.transformer.width
        )
    if cfg.heads.audio_pooling == "attention":
        parts["attention_pool"] = 2.0 * (2 * n_audio * a * a + 2 * a * a + 2 * n_audio * a)
    if cfg.has_decoder:
        parts["decoder"] = decoder_flops(cfg.decoder, num_tokens, n_audio, a)
    if cfg.has_tagging_head:
        parts["tag_head"] = 2.0 * a * cfg.heads.num_labels
    parts["total"] = sum(parts.values())
    return parts


def train_flops_per_example(cfg: ModelConfig, num_frames: int, num_tokens: int) -> float:
    """Forward + backward (2x forward) FLOPs per example, after token dropout. A locked text
    tower costs nothing per step: the trainer reads its outputs from a cache computed once."""
    parts = model_flops(cfg, num_frames, num_tokens, train=True)
    cached = parts.get("text_encoder", 0.0) if cfg.text.locked else 0.0
    return 3.0 * (parts["total"] - cached)
