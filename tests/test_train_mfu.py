"""Peak table, utilisation arithmetic, and the analytic FLOPs of a whole train step against
XLA's own count of the compiled step."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from audiolm_pt import sharding
from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.models.config import TransformerConfig, preset
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import mfu, synthetic
from audiolm_pt.train.build import build_trainer


def test_peak_table_lookup():
    assert mfu.peak_flops_per_device("TPU v5 lite", "bfloat16") == 197e12
    assert mfu.peak_flops_per_device("TPU v5p", "bfloat16") == 459e12
    assert mfu.peak_flops_per_device("TPU v4", "float32") == 275e12
    assert mfu.peak_flops_per_device("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert mfu.peak_flops_per_device("NVIDIA H200", "float32") == 67e12
    assert mfu.peak_flops_per_device("NVIDIA A100-SXM4-80GB", "tfloat32") == 156e12
    assert mfu.peak_flops_per_device("cpu", "float32") is None
    with pytest.raises(ValueError, match="float16"):
        mfu.peak_flops_per_device("TPU v4", "float16")


def test_utilisation_arithmetic():
    # 8e15 FLOPs in 2 s on 4 devices = 1e15 FLOP/s each; half of a 2e15 peak.
    out = mfu.utilisation(8e15, 2.0, 4, 2e15)
    assert out == pytest.approx({"tflops_per_device": 1000.0, "mfu": 0.5})
    assert mfu.utilisation(8e15, 2.0, 4, None) == pytest.approx({"tflops_per_device": 1000.0})


def test_measured_peak_counts_a_matmul_as_xla_does():
    per_second, flops = mfu.measure_matmul_peak("float32", size=256, repeats=2)
    a = jax.ShapeDtypeStruct((256, 256), jnp.float32)
    xla = jax.jit(jnp.matmul).lower(a, a).compile().cost_analysis()["flops"]
    assert flops == xla == 2 * 256**3
    assert per_second > 0


def test_analytic_train_step_flops_match_xla_within_10_percent():
    """Hybrid covers audio encoder, text encoder, heads and caption decoder in one step."""
    width, frames, tokens, batch = 128, 400, 32, 8
    stack = TransformerConfig(width=width, depth=2, num_heads=4, mlp_dim=4 * width)
    cfg = preset("tiny", "hybrid")
    cfg = dataclasses.replace(
        cfg,
        audio=dataclasses.replace(cfg.audio, transformer=stack, max_frames=frames),
        text=dataclasses.replace(cfg.text, transformer=stack, vocab_size=1000, max_positions=64),
        decoder=dataclasses.replace(
            cfg.decoder, transformer=stack, vocab_size=1000, max_length=tokens
        ),
        heads=dataclasses.replace(cfg.heads, joint_dim=width),
    )
    trainer = build_trainer(
        cfg,
        ObjectiveConfig(objective="hybrid"),
        OptimizerConfig(),
        sharding.ShardingConfig(),
        total_steps=10,
        devices=jax.devices()[:1],
    )
    example = synthetic.synthetic_batch(cfg, batch, frames, tokens, seed=0, index=0)
    compiled = trainer.step.lower(trainer.abstract, example).compile()
    xla = compiled.cost_analysis()["flops"]
    analytic = mfu.train_step_flops(cfg, batch, frames, tokens)
    print(f"train step FLOPs: XLA {xla:.4g}, analytic {analytic:.4g}, ratio {xla / analytic:.4f}")
    assert abs(xla / analytic - 1) <= 0.10
