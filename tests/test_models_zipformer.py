"""The Zipformer encoder: parameter counts against the reference, output geometry and token
times, padding invariance at every frame rate, and what it refuses by key.

Reference counts: icefall's Zipformer2 and Conv2dSubsampling (k2-fsa/icefall, commit
36e0420c) instantiated in PyTorch with the recipe's S, M and L arguments; with the transducer
decoder, joiner and projection heads added they give RESULTS.md's published totals
(23,285,615 / 65,549,011 / 148,439,574), which checks the counts below.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from audiolm_pt import sharding
from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.models import flops
from audiolm_pt.models.audio_encoder import AudioEncoder
from audiolm_pt.models.config import (
    OBJECTIVES,
    ZIPFORMER_SIZES,
    AudioEncoderConfig,
    HeadConfig,
    ModelConfig,
    TransformerConfig,
    ZipformerConfig,
    preset,
)
from audiolm_pt.models.zipformer import Zipformer, ZipformerStack
from audiolm_pt.models.zipformer_layers import depthwise_conv
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import mfu, synthetic
from audiolm_pt.train.build import build_trainer

EMBED_PARAMS = 611_953
ENCODER_PARAMS = {"S": 21_377_826, "M": 63_382_150, "L": 146_013_641}
# One layer of M's 8-head, 512-wide stack, by module (feed_forward1/2/3: 3f/4, f, 5f/4 wide).
M_MIDDLE_LAYER = {
    "attention_weights": 280_608,
    "self_attn1": 98_912,
    "self_attn2": 98_912,
    "feed_forward1": 1_181_312,
    "feed_forward2": 1_574_912,
    "feed_forward3": 1_968_512,
    "nonlin_attention": 788_096,
    "conv1": 796_160,
    "conv2": 796_160,
    "norm": 513,
    "bypass": 512,
    "bypass_mid": 512,
    "bypass_scale": 512,
}
# Three stacks at factors 1, 8 and 2 (widths 16 -> 32 -> 24: channels padded, then cut, and
# the output's last 8 channels from the middle stack), small enough to compile in seconds.
TINY = ZipformerConfig(
    num_layers=(1, 2, 1),
    dims=(16, 32, 24),
    ff_dims=(32, 64, 48),
    heads=(2, 4, 2),
    kernels=(5, 3, 3),
    downsampling=(1, 8, 2),
    query_head_dim=8,
    value_head_dim=4,
    pos_head_dim=2,
    pos_dim=8,
    embed_channels=(4, 8, 16),
)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract(z: ZipformerConfig):
    cfg = TransformerConfig(width=z.width, num_heads=4)
    return nnx.state(nnx.eval_shape(lambda: Zipformer(80, z, cfg, rngs=nnx.Rngs(0))), nnx.Param)


@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_parameter_counts_equal_the_reference(size):
    params = _abstract(ZIPFORMER_SIZES[size])
    embed = _count(params["embed"])
    assert embed == EMBED_PARAMS
    assert _count(params) - embed == ENCODER_PARAMS[size]
    if size == "M":
        layers = params["stacks"][3]["layers"]["blocks"]
        got = {name: _count(layers[name]) // 4 for name in layers}
        assert got == M_MIDDLE_LAYER


@pytest.fixture(scope="module")
def tiny():
    """The tiny encoder, jitted, with random parameters of unit-ish scale (bypass scales in
    [0.2, 1]) so that every path carries signal."""
    model = nnx.eval_shape(
        lambda: Zipformer(80, TINY, TransformerConfig(width=32, num_heads=4), rngs=nnx.Rngs(0))
    )
    graphdef, abstract = nnx.split(model)
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "bypass" in name or "out_combiner" in name:
            return jnp.asarray(rng.uniform(0.2, 1.0, leaf.shape), leaf.dtype)
        fan_in = leaf.shape[-2] if leaf.ndim >= 2 else 4
        return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)

    state = jax.tree_util.tree_map_with_path(draw, abstract)
    run = jax.jit(lambda s, x, mask: nnx.merge(graphdef, s)(x, mask))
    return lambda x, mask: run(state, x, mask)


def _features(lengths, total, seed=0):
    """The same clips (of `lengths` frames) padded with zeros to `total` frames."""
    x = np.random.default_rng(seed).normal(size=(len(lengths), max(lengths), 80))
    x = np.pad(x.astype(np.float32), ((0, 0), (0, total - max(lengths)), (0, 0)))
    mask = np.arange(total)[None] < np.asarray(lengths)[:, None]
    return jnp.asarray(np.where(mask[..., None], x, 0.0)), jnp.asarray(mask)


LENGTHS = (157, 120, 40)


def test_valid_frames_do_not_depend_on_padding(tiny):
    """Lengths that no stack factor (up to 8, x2 at the output) divides, padded by 0 and 13
    frames: the output lengths follow the subsampling and every valid frame is the same."""
    outputs = []
    for extra in (0, 13):
        x, m = _features(LENGTHS, max(LENGTHS) + extra)
        frames, mask = tiny(x, m)
        outputs.append((np.asarray(frames), np.asarray(mask)))
    assert outputs[0][0].shape == (3, -(-((157 - 7) // 2) // 2), 32)  # 32 = max(dims)
    expected = [-(-((n - 7) // 2) // 2) for n in LENGTHS]  # 38, 29, 9 at 25 Hz
    np.testing.assert_array_equal(np.sum(outputs[0][1], -1), expected)
    reference, ref_mask = outputs[0]
    for frames, mask in outputs[1:]:
        n = reference.shape[1]
        np.testing.assert_array_equal(mask[:, :n], ref_mask)
        assert not mask[:, n:].any()
        valid = ref_mask[..., None]
        np.testing.assert_allclose(
            np.where(valid, frames[:, :n], 0), np.where(valid, reference, 0), atol=2e-5
        )


def test_each_utterance_is_encoded_as_if_alone(tiny):
    x, m = _features(LENGTHS, 157)
    together, _ = tiny(x, m)
    alone, alone_mask = tiny(x[1:2, :120], m[1:2, :120])
    n = int(alone_mask.sum())
    np.testing.assert_allclose(together[1, :n], alone[0, :n], atol=2e-5)


def test_the_audio_encoder_runs_it_with_token_times_at_25_hz():
    cfg = AudioEncoderConfig(
        transformer=TransformerConfig(width=32, num_heads=4), encoder="zipformer", zipformer=TINY
    )
    encoder = nnx.eval_shape(lambda: AudioEncoder(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(encoder)
    frames, mask = jax.eval_shape(
        lambda s, x, m: nnx.merge(graphdef, s)(x, m), state, *_features((100,), 100)
    )
    assert frames.shape == (1, 23, 32)  # (100 - 7) // 2 = 46 embed frames, then 23
    assert mask.shape == (1, 23)
    # Output frame k averages embed frames 2k, 2k+1, centred on input frames 4k+3 and 4k+5.
    np.testing.assert_allclose(encoder.token_times(3), [0.045, 0.085, 0.125])
    assert encoder.output_hop_seconds == pytest.approx(0.04)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frontend": "patch"}, "frontend='patch'"),
        ({"token_keep": 0.5}, "token_keep"),
        ({"max_frames": 8}, "max_frames=8"),
        ({"transformer": TransformerConfig(width=64)}, r"transformer.width=64 .* max\(zipformer"),
    ],
)
def test_unsupported_combinations_name_the_key(change, message):
    base = AudioEncoderConfig(
        transformer=TransformerConfig(width=32, num_heads=4), encoder="zipformer", zipformer=TINY
    )
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(base, **change)


def test_stack_settings_must_agree_in_number():
    with pytest.raises(ValueError, match="zipformer stacks disagree in number"):
        ZipformerConfig(num_layers=(2, 2))


@pytest.mark.parametrize(("window", "shape"), [((5,), (2, 11, 6)), ((7, 7), (2, 9, 5, 4))])
def test_depthwise_convolution_by_shifts_equals_the_grouped_convolution(window, shape):
    """The shifted-sum form (whose gradient XLA does not inflate) against nnx.Conv."""
    channels = shape[-1]
    conv = nnx.Conv(
        channels,
        channels,
        kernel_size=window,
        padding=[(w // 2, w // 2) for w in window],
        feature_group_count=channels,
        bias_init=nnx.initializers.normal(1.0),
        rngs=nnx.Rngs(0),
    )
    x = jax.random.normal(jax.random.key(0), shape)
    np.testing.assert_allclose(depthwise_conv(x, conv), conv(x), atol=1e-5)


@pytest.mark.slow  # compiles the gradient of a mid-size encoder: about 13 s
def test_analytic_flops_match_xla_for_forward_and_backward():
    """The encoder's analytic FLOPs, times three, against XLA's count of its gradient, at
    widths where matrix products dominate as in S/M/L (XLA also counts elementwise work)."""
    z = ZipformerConfig(
        num_layers=(1, 2, 1),
        dims=(96, 128, 96),
        ff_dims=(256, 384, 256),
        heads=(4, 4, 4),
        kernels=(15, 15, 15),
        downsampling=(1, 4, 2),
    )
    cfg = AudioEncoderConfig(
        transformer=TransformerConfig(width=128, num_heads=4), encoder="zipformer", zipformer=z
    )
    model = nnx.eval_shape(lambda: Zipformer(80, z, cfg.transformer, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    x, mask = _features((400,), 400)

    def loss(s):
        return jnp.sum(nnx.merge(graphdef, s)(x, mask)[0])

    xla = jax.jit(jax.grad(loss)).lower(state).compile().cost_analysis()["flops"]
    analytic = 3 * flops.audio_encoder_flops(cfg, 400)
    assert abs(xla / analytic - 1) < 0.10


def _one_device_trainer(cfg: ModelConfig):
    """The trainer of `cfg`'s objective with default AdamW on one device."""
    return build_trainer(
        cfg,
        ObjectiveConfig(objective=cfg.objective),
        OptimizerConfig(),
        sharding.ShardingConfig(),
        total_steps=10,
        devices=jax.devices()[:1],
    )


@pytest.mark.parametrize(
    "size",
    ["base", pytest.param("large", marks=pytest.mark.slow)],  # each lowers in ~15 s
)
def test_analytic_flops_match_xla_for_a_full_train_step(size):
    """`:base`'s (Zipformer-M) and `:large`'s (Zipformer-L) hybrid train step, text tower,
    caption decoder, losses and AdamW included, as XLA counts the lowered program (before
    fusion, which does not change what is computed)."""
    cfg = preset(size, "hybrid")
    trainer = _one_device_trainer(cfg)
    batch = synthetic.synthetic_batch(cfg, 2, 1000, 32, seed=0, index=0)
    xla = trainer.step.lower(trainer.abstract, batch).cost_analysis()["flops"]
    analytic = mfu.train_step_flops(cfg, 2, 1000, 32)
    assert abs(xla / analytic - 1) < 0.10, xla / analytic


@pytest.mark.parametrize(
    "objective",
    # Hybrid covers the contrastive and captioning paths; the rest run in the slow suite.
    [o if o in ("hybrid",) else pytest.param(o, marks=pytest.mark.slow) for o in OBJECTIVES],
)
def test_every_objective_builds_a_train_step_with_it(objective):
    """Traced, not compiled: shapes flow through every objective's losses and heads."""
    heads = {"heads": HeadConfig(joint_dim=64, num_labels=5)} if objective == "tagging" else {}
    cfg = preset("tiny", objective, **heads)
    audio = dataclasses.replace(
        cfg.audio,
        encoder="zipformer",
        zipformer=TINY,
        transformer=TransformerConfig(width=32, num_heads=4),
        max_frames=200,
    )
    cfg = dataclasses.replace(cfg, audio=audio)
    trainer = _one_device_trainer(cfg)
    batch = synthetic.synthetic_batch(cfg, 4, 200, 12, seed=0, index=0)
    state, metrics = jax.eval_shape(trainer.step, trainer.abstract, batch)
    assert metrics["loss"].shape == ()
    assert jax.tree.structure(state) == jax.tree.structure(trainer.abstract)


def _tiny_model(objective: str = "contrastive", **transformer) -> ModelConfig:
    cfg = preset("tiny", objective)
    audio = dataclasses.replace(
        cfg.audio,
        encoder="zipformer",
        zipformer=TINY,
        transformer=TransformerConfig(width=32, num_heads=4, **transformer),
        max_frames=200,
    )
    return dataclasses.replace(cfg, audio=audio)


SCALED_ADAM = OptimizerConfig(name="scaled_adam", learning_rate=0.02, schedule="constant")


def _state_bytes(tree, shardings=None) -> int:
    """Bytes of `tree`, whole or (with `shardings`) of one device's shards."""
    leaves = jax.tree.leaves(tree)
    shapes = [x.shape for x in leaves]
    if shardings is not None:
        shapes = [s.shard_shape(x) for s, x in zip(jax.tree.leaves(shardings), shapes, strict=True)]
    return sum(int(np.prod(s)) * x.dtype.itemsize for s, x in zip(shapes, leaves, strict=True))


@pytest.mark.slow  # compiles three train steps of the tiny Zipformer: about 4 minutes
def test_fsdp_and_tensor_meshes_train_like_one_device():
    """Two ScaledAdam steps on 8 simulated devices (FSDP, FSDP x tensor) give one device's
    losses, and each device holds its share of the parameters and optimizer state."""
    cfg = _tiny_model()
    batch = synthetic.synthetic_batch(cfg, 8, 200, 12, seed=0, index=0)

    def losses(mesh_cfg, devices=None):
        trainer = build_trainer(
            cfg, ObjectiveConfig(), SCALED_ADAM, mesh_cfg, total_steps=10, devices=devices
        )
        state, out = trainer.init(), []
        for _ in range(2):
            state, metrics = trainer.step(state, batch)
            out.append(float(metrics["loss"]))
        return out, trainer

    reference, _ = losses(sharding.ShardingConfig(), jax.devices()[:1])
    meshes = {
        "fsdp": sharding.ShardingConfig(ici_data=1, ici_fsdp=-1),
        "fsdp_tensor": sharding.ShardingConfig(ici_data=1, ici_fsdp=4, ici_tensor=2),
    }
    for name, mesh_cfg in meshes.items():
        got, trainer = losses(mesh_cfg)
        np.testing.assert_allclose(got, reference, rtol=1e-5, err_msg=name)
        state = (trainer.abstract["params"], trainer.abstract["opt_state"])
        shards = (trainer.shardings["params"], trainer.shardings["opt_state"])
        ratio = _state_bytes(state, shards) / (_state_bytes(state) / 8)
        assert ratio <= 1.6, (name, ratio)  # the tiny model's small vectors stay replicated


@pytest.mark.parametrize("size", ["base", "large"])
def test_study_sizes_hold_their_share_of_parameters_and_scaled_adam_state(size):
    """`:base` (Zipformer-M) and `:large` (Zipformer-L) with BERT-shaped text towers: per
    device, parameters + ScaledAdam state within 1.15x of total/8 on FSDP and FSDP x tensor."""
    cfg = preset(size, "contrastive")
    meshes = (
        sharding.ShardingConfig(ici_data=1, ici_fsdp=-1),
        sharding.ShardingConfig(ici_data=2, ici_fsdp=2, ici_tensor=2),
    )
    for mesh_cfg in meshes:
        trainer = build_trainer(cfg, ObjectiveConfig(), SCALED_ADAM, mesh_cfg, total_steps=10)
        state = (trainer.abstract["params"], trainer.abstract["opt_state"])
        shards = (trainer.shardings["params"], trainer.shardings["opt_state"])
        devices = 8 // mesh_cfg.ici_data
        ratio = _state_bytes(state, shards) / (_state_bytes(state) / devices)
        assert ratio <= 1.15, (mesh_cfg, ratio)


def _stack_outputs(remat: str, scan: bool, params=None):
    """Output and input gradient of TINY's two-layer, factor-8 stack under remat/scan, and
    its parameters (the layout is the same in every form: one array per layer axis)."""
    cfg = TransformerConfig(width=32, num_heads=4, remat=remat, scan_layers=scan)
    stack = ZipformerStack(1, TINY, cfg, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(stack)
    state = state if params is None else params
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 43, 32)), jnp.float32)
    mask = jnp.arange(43)[None] < jnp.array([[43], [30]])

    def loss(s, x):
        y = nnx.merge(graphdef, s)(x, mask)
        return jnp.sum(jnp.where(mask[..., None], y, 0.0) ** 2), y

    (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(state, x)
    return y, grads, state


@pytest.fixture(scope="module")
def unrolled_stack():
    return _stack_outputs("none", False)


@pytest.mark.parametrize(
    ("remat", "scan"),
    # Each compiles a gradient (about 10 s): scan runs by default, remat in the slow suite.
    [
        ("none", True),
        *(pytest.param(*p, marks=pytest.mark.slow) for p in [("full", False), ("save_dots", True)]),
    ],
)
def test_remat_and_scan_over_a_stacks_layers_equal_the_unrolled_form(unrolled_stack, remat, scan):
    y_ref, g_ref, params = unrolled_stack
    y, g, _ = _stack_outputs(remat, scan, params)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        # float32 sums in another order: equal to 1e-4 of each gradient's scale (at least 1:
        # some gradients, attention key biases, are zero up to rounding).
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(np.abs(b).max(), 1.0))
