"""Model configuration: frozen dataclasses, strict `from_dict`, and the size presets.

Configs hold only what shapes the network; the trainer's and data pipeline's settings live
elsewhere. `from_dict` rejects unknown keys so a typo in an experiment config fails at
start-up with the offending key named, instead of silently training the default.
"""

import dataclasses
from typing import Any, Literal, Self

from audiolm_pt import strict_config

OBJECTIVES = ("contrastive", "siglip", "captioning", "hybrid", "tagging")
REMAT_POLICIES = ("none", "full", "save_dots")
COMPUTE_DTYPES = ("float32", "bfloat16")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {choices}")


@dataclasses.dataclass(frozen=True)
class _Strict:
    """Base for configs: builds nested configs from dicts and rejects unknown keys."""

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, path: str = "") -> Self:
        return strict_config.from_dict(cls, d, path.rstrip("."))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(_Strict):
    """Shared transformer stack settings."""

    width: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_dim: int = 256
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    scan_layers: bool = False

    def __post_init__(self):
        _check_choice("remat", self.remat, REMAT_POLICIES)
        _check_choice("dtype", self.dtype, COMPUTE_DTYPES)
        _check_choice("param_dtype", self.param_dtype, COMPUTE_DTYPES)
        if self.width % self.num_heads:
            raise ValueError(f"width={self.width} is not divisible by num_heads={self.num_heads}")
        for key in ("width", "depth", "num_heads", "mlp_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be positive")


@dataclasses.dataclass(frozen=True)
class ZipformerConfig(_Strict):
    """A Zipformer encoder (icefall's Zipformer2): stacks of `num_layers[i]` layers of width
    `dims[i]` running at 1/`downsampling[i]` of the embed's frame rate, with `heads[i]` heads,
    feed-forward width `ff_dims[i]` (its three modules use 3/4, 1 and 5/4 of it) and depthwise
    kernels `kernels[i]`; the output (width max(dims)) is downsampled by
    `output_downsampling`. `ZIPFORMER_SIZES` holds the reference's S, M and L."""

    num_layers: tuple[int, ...] = (2, 2, 3, 4, 3, 2)
    dims: tuple[int, ...] = (192, 256, 384, 512, 384, 256)
    ff_dims: tuple[int, ...] = (512, 768, 1024, 1536, 1024, 768)
    heads: tuple[int, ...] = (4, 4, 4, 8, 4, 4)
    kernels: tuple[int, ...] = (31, 31, 15, 15, 15, 31)
    downsampling: tuple[int, ...] = (1, 2, 4, 8, 4, 2)
    query_head_dim: int = 32
    value_head_dim: int = 12
    pos_head_dim: int = 4
    pos_dim: int = 48
    output_downsampling: int = 2
    embed_channels: tuple[int, int, int] = (8, 32, 128)

    def __post_init__(self):
        per_stack = ("num_layers", "dims", "ff_dims", "heads", "kernels", "downsampling")
        lengths = {key: len(getattr(self, key)) for key in per_stack}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"zipformer stacks disagree in number: {lengths}")
        for key in (*per_stack, "embed_channels"):
            if min(getattr(self, key)) < 1:
                raise ValueError(f"zipformer.{key}={getattr(self, key)} must be positive")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"zipformer.kernels={self.kernels} must be odd")
        if self.pos_dim % 2:
            raise ValueError(f"zipformer.pos_dim={self.pos_dim} must be even")

    @property
    def width(self) -> int:
        return max(self.dims)


ZIPFORMER_MIN_FRAMES = 9

ZIPFORMER_SIZES = {
    "S": ZipformerConfig(
        num_layers=(2, 2, 2, 2, 2, 2),
        dims=(192, 256, 256, 256, 256, 256),
        ff_dims=(512, 768, 768, 768, 768, 768),
    ),
    "M": ZipformerConfig(),
    "L": ZipformerConfig(
        num_layers=(2, 2, 4, 5, 4, 2),
        dims=(192, 256, 512, 768, 512, 256),
        ff_dims=(512, 768, 1536, 2048, 1536, 768),
    ),
}


@dataclasses.dataclass(frozen=True)
class AudioEncoderConfig(_Strict):
    """Audio encoder over log-mel frames [B, T, n_mels]: a transformer over a `patch` or
    `conv` front end, or (`encoder="zipformer"`) a Zipformer with its own conv embed, whose
    width `transformer.width` must equal (the transformer section also gives dtypes, remat
    and scan)."""

    transformer: TransformerConfig = TransformerConfig()
    encoder: Literal["transformer", "zipformer"] = "transformer"
    zipformer: ZipformerConfig = ZipformerConfig()
    n_mels: int = 80
    input_hop_ms: float = 10.0
    frontend: Literal["patch", "conv"] = "conv"
    # patch front-end (AST/ViT style): non-overlapping time x frequency patches.
    patch_time: int = 16
    patch_freq: int = 16
    # conv front-end: two stride-2 3x3 convolutions over (time, frequency).
    conv_channels: int = 32
    positions: Literal["learned", "sinusoidal"] = "learned"
    max_frames: int = 3000
    # Input standardisation (x - input_mean) / input_std, with statistics of the training
    # features (AST-style); 0 and 1 leave the features as they are.
    input_mean: float = 0.0
    input_std: float = 1.0
    # Audio token dropout (FLIP-style, training only): each example keeps this fraction of its
    # valid front-end tokens, chosen at random, before the transformer layers (1.0 keeps all).
    token_keep: float = 1.0

    def __post_init__(self):
        _check_choice("encoder", self.encoder, ("transformer", "zipformer"))
        _check_choice("frontend", self.frontend, ("patch", "conv"))
        _check_choice("positions", self.positions, ("learned", "sinusoidal"))
        if not 0.0 < self.token_keep <= 1.0:
            raise ValueError(f"token_keep={self.token_keep} must be in (0, 1]")
        if self.input_std <= 0:
            raise ValueError(f"input_std={self.input_std} must be > 0")
        if self.encoder == "zipformer":
            self._check_zipformer()

    def _check_zipformer(self) -> None:
        """What the Zipformer cannot do, named by key."""
        if self.transformer.width != self.zipformer.width:
            raise ValueError(
                f"transformer.width={self.transformer.width} must equal the zipformer's output "
                f"width max(zipformer.dims)={self.zipformer.width}"
            )
        if self.frontend != "conv":
            raise ValueError(f"frontend={self.frontend!r}: the zipformer has its own conv embed")
        if self.token_keep < 1.0:
            raise ValueError("token_keep: below 1 is not supported with encoder='zipformer'")
        if self.max_frames < self.min_frames:
            raise ValueError(
                f"max_frames={self.max_frames}: the zipformer's embed needs at least "
                f"{self.min_frames} frames"
            )

    @property
    def min_frames(self) -> int:
        """Input frames the encoder needs for one output frame: the Zipformer's conv embed
        sees 9 (two valid 3-frame convolutions around a stride of 2); a transformer's front
        end pads."""
        return ZIPFORMER_MIN_FRAMES if self.encoder == "zipformer" else 1


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig(_Strict):
    """BERT-layout text encoder (post-LN, learned positions, token types).

    `init_from`: a local Hugging Face directory (config.json, model.safetensors, tokenizer.json
    or vocab.txt) whose shape, pooling and tokenizer the tower takes, and whose weights it
    starts from (see `audiolm_pt.experiment`). `locked` (LiT): the tower runs without dropout
    and without gradient, its parameters are frozen, and the trainer reads each caption's
    pooled tower output from a cache computed once.
    """

    transformer: TransformerConfig = TransformerConfig(layer_norm_eps=1e-12)
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    pooling: Literal["cls", "mean"] = "cls"
    init_from: str = ""
    locked: bool = False

    def __post_init__(self):
        _check_choice("pooling", self.pooling, ("cls", "mean"))


@dataclasses.dataclass(frozen=True)
class DecoderConfig(_Strict):
    """Caption decoder: causal (or CapPa parallel) self-attention plus cross-attention."""

    transformer: TransformerConfig = TransformerConfig()
    vocab_size: int = 30522
    max_length: int = 128
    bos_id: int = 101
    eos_id: int = 102
    pad_id: int = 0
    mask_id: int = 103


@dataclasses.dataclass(frozen=True)
class HeadConfig(_Strict):
    """Pooling and projection into the shared space, temperature and tagging head."""

    joint_dim: int = 1024
    projection_depth: int = 2
    projection_activation: Literal["relu", "gelu"] = "relu"
    audio_pooling: Literal["mean", "attention"] = "mean"
    attention_pool_heads: int = 4
    learn_temperature: bool = False
    temperature_init: float = 1.0 / 0.07
    temperature_max: float = 100.0
    siglip_bias_init: float = -10.0
    siglip_scale_init: float = 10.0
    num_labels: int = 0

    def __post_init__(self):
        _check_choice("projection_activation", self.projection_activation, ("relu", "gelu"))
        _check_choice("audio_pooling", self.audio_pooling, ("mean", "attention"))
        if self.projection_depth < 1:
            raise ValueError(f"projection_depth={self.projection_depth} must be >= 1")


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Strict):
    """The whole model; `objective` decides which parts exist. `compute_dtype` ("bfloat16"
    or "float32") sets every tower's `transformer.dtype` at once; "" leaves each tower's.
    Parameters and optimizer state keep `param_dtype`, and losses, softmaxes, norms' statistics
    and pooling run in float32 whatever the compute dtype."""

    objective: str = "contrastive"
    audio: AudioEncoderConfig = AudioEncoderConfig()
    text: TextEncoderConfig = TextEncoderConfig()
    decoder: DecoderConfig = DecoderConfig()
    heads: HeadConfig = HeadConfig()
    compute_dtype: str = ""

    def __post_init__(self):
        _check_choice("objective", self.objective, OBJECTIVES)
        _check_choice("compute_dtype", self.compute_dtype, ("", *COMPUTE_DTYPES))
        if self.compute_dtype:
            for tower in ("audio", "text", "decoder"):
                part = getattr(self, tower)
                stack = dataclasses.replace(part.transformer, dtype=self.compute_dtype)
                object.__setattr__(self, tower, dataclasses.replace(part, transformer=stack))
        if self.objective == "tagging" and self.heads.num_labels < 1:
            raise ValueError("heads.num_labels must be >= 1 for objective='tagging'")

    @property
    def has_text_encoder(self) -> bool:
        return self.objective in ("contrastive", "siglip", "hybrid")

    @property
    def has_decoder(self) -> bool:
        return self.objective in ("captioning", "hybrid")

    @property
    def has_tagging_head(self) -> bool:
        return self.heads.num_labels > 0


def _stack(width: int, depth: int, heads: int, **kw: Any) -> TransformerConfig:
    return TransformerConfig(width=width, depth=depth, num_heads=heads, mlp_dim=4 * width, **kw)


_SIZES = {
    # audio: (width, depth, heads, conv channels) of a transformer, or a Zipformer size;
    # (text w, d, h), (decoder w, d, h), joint
    "tiny": ((64, 2, 4, 8), (64, 2, 4), (64, 2, 4), 64),
    "small": ((384, 6, 6, 32), (384, 6, 12), (384, 3, 6), 512),
    "base": ("M", (768, 12, 12), (768, 6, 12), 1024),
    "large": ("L", (1024, 24, 16), (1024, 12, 16), 1024),
}


def _audio(spec: tuple[int, int, int, int] | str) -> AudioEncoderConfig:
    if isinstance(spec, str):
        z = ZIPFORMER_SIZES[spec]
        # The transformer section gives the Zipformer its output width, dtypes, remat and scan.
        stack = _stack(z.width, 1, max(z.heads))
        return AudioEncoderConfig(transformer=stack, encoder="zipformer", zipformer=z)
    width, depth, heads, channels = spec
    return AudioEncoderConfig(transformer=_stack(width, depth, heads), conv_channels=channels)


def preset(size: str, objective: str = "contrastive", **overrides: Any) -> ModelConfig:
    """A size preset (`tiny`, `small`, `base`, `large`) for an objective.

    `base` follows the study: a Zipformer-M audio encoder (64.0M parameters, icefall's
    recipe), BERT-base text encoder, 6-layer d=768 caption decoder, 1024-d projection heads,
    fixed temperature 0.07; `large` has a Zipformer-L (146.6M) and 24-layer d=1024 towers.
    `tiny` and `small` have transformer audio encoders; `small` has the all-MiniLM-L6-v2 text
    shape so that checkpoint loads into it.
    """
    if size not in _SIZES:
        raise ValueError(f"size={size!r}: expected one of {tuple(_SIZES)}")
    audio, (tw, td, th), (dw, dd, dh), joint = _SIZES[size]
    parts = {
        "objective": objective,
        "audio": _audio(audio),
        "text": TextEncoderConfig(
            transformer=_stack(tw, td, th, layer_norm_eps=1e-12, dropout_rate=0.1),
            pooling="cls",
        ),
        "decoder": DecoderConfig(transformer=_stack(dw, dd, dh, dropout_rate=0.1)),
        "heads": HeadConfig(joint_dim=joint),
    }
    # Overrides go in before validation: e.g. a tagging preset is only valid with its labels.
    return ModelConfig(**(parts | overrides))
