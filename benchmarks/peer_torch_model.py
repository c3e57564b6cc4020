"""The PyTorch twin of the contrastive model, for `peer_torch.py`: the same audio transformer
(conv front end, learned positions, pre-LN blocks), BERT-layout text tower (or a locked
tower's cached features), mean pooling, projection heads and symmetric InfoNCE at a fixed
temperature, written as a PyTorch user would (fused QKV projection, `scaled_dot_product_attention`,
AdamW with a no-decay group), plus the map from our parameters to its state dict and its
forward FLOPs counted by `torch.utils.flop_counter`.

Only what the peers' configs use is covered; anything else is refused by `check_supported`.
"""

import itertools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from audiolm_pt.models.config import ModelConfig, TransformerConfig
from audiolm_pt.models.layers import NEG_INF


def check_supported(cfg: ModelConfig) -> None:
    """Raises ValueError naming the first setting the twin does not implement."""
    a, h = cfg.audio, cfg.heads
    unsupported = {
        "objective": (cfg.objective, "contrastive"),
        "audio.encoder": (a.encoder, "transformer"),
        "audio.frontend": (a.frontend, "conv"),
        "audio.positions": (a.positions, "learned"),
        "audio.token_keep": (a.token_keep, 1.0),
        "heads.audio_pooling": (h.audio_pooling, "mean"),
        "heads.learn_temperature": (h.learn_temperature, False),
        # A locked tower's pooled outputs come cached in the batch.
        "text.pooling": ("cls" if cfg.text.locked else cfg.text.pooling, "cls"),
        "audio.transformer.attention_dropout_rate": (a.transformer.attention_dropout_rate, 0.0),
    }
    for key, (value, wanted) in unsupported.items():
        if value != wanted:
            raise ValueError(f"the torch twin needs {key}={wanted!r}, got {value!r}")


class Block(nn.Module):
    """Self-attention + MLP, pre-LN (ViT) or post-LN (BERT), with residual dropout."""

    def __init__(self, t: TransformerConfig, post_ln: bool):
        super().__init__()
        self.heads, self.post_ln, self.rate = t.num_heads, post_ln, t.dropout_rate
        self.qkv = nn.Linear(t.width, 3 * t.width)
        self.out = nn.Linear(t.width, t.width)
        self.attn_norm = nn.LayerNorm(t.width, eps=t.layer_norm_eps)
        self.up = nn.Linear(t.width, t.mlp_dim)
        self.down = nn.Linear(t.mlp_dim, t.width)
        self.mlp_norm = nn.LayerNorm(t.width, eps=t.layer_norm_eps)

    def attend(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(y.transpose(1, 2).reshape(b, n, d))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        def drop(y):
            return F.dropout(y, self.rate, self.training)

        if self.post_ln:
            x = self.attn_norm(x + drop(self.attend(x, bias)))
            return self.mlp_norm(x + drop(self.mlp(x)))
        x = x + drop(self.attend(self.attn_norm(x), bias))
        return x + drop(self.mlp(self.mlp_norm(x)))


def key_bias(mask: torch.Tensor) -> torch.Tensor:
    """bool [B, K] (True = valid key) -> additive attention mask [B, 1, 1, K]."""
    zero = torch.zeros((), dtype=torch.float32)
    return torch.where(mask, zero, NEG_INF)[:, None, None, :]


class AudioTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        a, t = cfg.audio, cfg.audio.transformer
        c = a.conv_channels
        self.mean, self.std = a.input_mean, a.input_std
        self.convs = nn.ModuleList([nn.Conv2d(c_in, c, 3, stride=2, padding=1) for c_in in (1, c)])
        freq_out = math.ceil(math.ceil(a.n_mels / 2) / 2)
        self.proj = nn.Linear(c * freq_out, t.width)
        self.time_pos = nn.Parameter(torch.zeros(-(-a.max_frames // 4), t.width))
        self.blocks = nn.ModuleList([Block(t, post_ln=False) for _ in range(t.depth)])
        self.norm = nn.LayerNorm(t.width, eps=t.layer_norm_eps)

    def front_end(self, features: torch.Tensor, mask: torch.Tensor):
        """Standardised, masked features -> conv tokens [B, N, D] and their mask."""
        x = torch.where(mask[..., None], (features - self.mean) / self.std, 0.0)
        h = x[:, None]  # [B, 1, T, F]: time and frequency are the conv's two spatial axes
        for conv in self.convs:
            mask = mask[:, ::2]
            h = F.gelu(conv(h), approximate="tanh") * mask[:, None, :, None]
        b, c, n, f = h.shape
        return self.proj(h.permute(0, 2, 3, 1).reshape(b, n, f * c)), mask

    def forward(self, features: torch.Tensor, mask: torch.Tensor):
        x, mask = self.front_end(features, mask)
        x = x + self.time_pos[: x.shape[1]]
        bias = key_bias(mask)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x), mask


class TextTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        s, t = cfg.text, cfg.text.transformer
        self.word = nn.Embedding(s.vocab_size, t.width)
        self.position = nn.Parameter(torch.zeros(s.max_positions, t.width))
        self.token_type = nn.Parameter(torch.zeros(s.type_vocab_size, t.width))
        self.embed_norm = nn.LayerNorm(t.width, eps=t.layer_norm_eps)
        self.rate = t.dropout_rate
        self.blocks = nn.ModuleList([Block(t, post_ln=True) for _ in range(t.depth)])

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        x = self.word(tokens) + self.position[:n] + self.token_type[0]
        x = F.dropout(self.embed_norm(x), self.rate, self.training)
        bias = key_bias(mask)
        for block in self.blocks:
            x = block(x, bias)
        return x[:, 0]


class Head(nn.Module):
    def __init__(self, in_dim: int, joint: int, depth: int, activation: str):
        super().__init__()
        dims = [in_dim] + [joint] * depth
        self.linears = nn.ModuleList([nn.Linear(i, o) for i, o in itertools.pairwise(dims)])
        self.act = F.relu if activation == "relu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, linear in enumerate(self.linears):
            x = linear(self.act(x) if i else x)
        return x


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(torch.clamp((x * x).sum(-1, keepdim=True), min=1e-12))


class Twin(nn.Module):
    """`forward(batch) -> (loss, audio_emb, text_emb)`; a locked text tower is replaced by the
    batch's cached `text_features`, as in our trainer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_supported(cfg)
        h = cfg.heads
        self.locked = cfg.text.locked
        self.audio = AudioTower(cfg)
        self.text = None if self.locked else TextTower(cfg)
        args = (h.joint_dim, h.projection_depth, h.projection_activation)
        self.audio_proj = Head(cfg.audio.transformer.width, *args)
        self.text_proj = Head(cfg.text.transformer.width, *args)
        self.scale = min(h.temperature_init, h.temperature_max)

    def embeddings(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        frames, mask = self.audio(batch["features"], batch["feature_mask"])
        w = mask.to(frames.dtype)[..., None]
        pooled = (frames * w).sum(1) / torch.clamp(w.sum(1), min=1.0)
        text = (
            batch["text_features"]
            if self.locked
            else self.text(batch["text_tokens"], batch["text_mask"])
        )
        return l2_normalize(self.audio_proj(pooled)), l2_normalize(self.text_proj(text))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        a, t = self.embeddings(batch)
        logits = self.scale * a @ t.T
        labels = torch.arange(a.shape[0])
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _stacked(params: dict[str, np.ndarray], prefix: str, i: int) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v[i] for k, v in params.items() if k.startswith(prefix)}


def _block_state(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    def kernel(name):  # [D, H, Dh] -> torch's [H*Dh, D]
        w = p[f"attn/{name}/kernel"]
        return w.reshape(w.shape[0], -1).T

    qkv = ("query", "key", "value")
    return {
        "qkv.weight": np.concatenate([kernel(n) for n in qkv]),
        "qkv.bias": np.concatenate([p[f"attn/{n}/bias"].reshape(-1) for n in qkv]),
        "out.weight": p["attn/out/kernel"].reshape(-1, p["attn/out/kernel"].shape[-1]).T,
        "out.bias": p["attn/out/bias"],
        "attn_norm.weight": p["attn_norm/scale"],
        "attn_norm.bias": p["attn_norm/bias"],
        "up.weight": p["mlp/up/kernel"].T,
        "up.bias": p["mlp/up/bias"],
        "down.weight": p["mlp/down/kernel"].T,
        "down.bias": p["mlp/down/bias"],
        "mlp_norm.weight": p["mlp_norm/scale"],
        "mlp_norm.bias": p["mlp_norm/bias"],
    }


def state_dict_from(params: dict[str, np.ndarray], twin: Twin) -> dict[str, torch.Tensor]:
    """Our parameters ({path: array}, paths as `train.optimizer.path_string` writes them) as
    the twin's state dict."""
    out: dict[str, np.ndarray] = {}
    for i, conv in enumerate(("0", "1")):
        k = params[f"audio_encoder/frontend/convs/{conv}/kernel"]  # HWIO -> OIHW
        out[f"audio.convs.{i}.weight"] = k.transpose(3, 2, 0, 1)
        out[f"audio.convs.{i}.bias"] = params[f"audio_encoder/frontend/convs/{conv}/bias"]
    out["audio.proj.weight"] = params["audio_encoder/frontend/proj/kernel"].T
    out["audio.proj.bias"] = params["audio_encoder/frontend/proj/bias"]
    out["audio.time_pos"] = params["audio_encoder/time_pos/embedding"]
    out["audio.norm.weight"] = params["audio_encoder/norm/scale"]
    out["audio.norm.bias"] = params["audio_encoder/norm/bias"]
    towers = [("audio", "audio_encoder", twin.audio)]
    if twin.text is not None:
        towers.append(("text", "text_encoder", twin.text))
        out["text.word.weight"] = params["text_encoder/word/embedding"]
        out["text.position"] = params["text_encoder/position/embedding"]
        out["text.token_type"] = params["text_encoder/token_type/embedding"]
        out["text.embed_norm.weight"] = params["text_encoder/embed_norm/scale"]
        out["text.embed_norm.bias"] = params["text_encoder/embed_norm/bias"]
    for name, ours, tower in towers:
        for i in range(len(tower.blocks)):
            block = _block_state(_stacked(params, f"{ours}/layers/blocks/", i))
            out.update({f"{name}.blocks.{i}.{k}": v for k, v in block.items()})
    for head in ("audio_proj", "text_proj"):
        for i in range(len(getattr(twin, head).linears)):
            out[f"{head}.linears.{i}.weight"] = params[f"{head}/linears/{i}/kernel"].T
            out[f"{head}.linears.{i}.bias"] = params[f"{head}/linears/{i}/bias"]
    return {k: torch.from_numpy(np.array(v, np.float32)) for k, v in out.items()}


def load_twin(cfg: ModelConfig, params: dict[str, np.ndarray]) -> Twin:
    """A twin holding exactly our parameters (every twin parameter set, none left over)."""
    twin = Twin(cfg)
    twin.load_state_dict(state_dict_from(params, twin), strict=True)
    return twin


def adamw(twin: Twin, lr: float, weight_decay: float, b1: float, b2: float, eps: float):
    """AdamW with our decay rule (kernels and embeddings decay; biases and norms, the
    one-dimensional parameters here, do not), fused."""
    decay = [p for p in twin.parameters() if p.ndim >= 2]
    rest = [p for p in twin.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), eps=eps, fused=True)


def forward_flops(twin: Twin, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of the embeddings' forward pass (encoders and heads; not the B x B logits) as
    torch's own counter sees them: matmuls, convolutions, attention. The counter has no rule
    for the CPU's fused attention kernel, so attention runs as plain matmuls here."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        twin.embeddings(batch)
    return counter.get_total_flops()


def to_torch(batch: dict[str, np.ndarray], keys: Any) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(batch[k])) for k in keys if k in batch}
