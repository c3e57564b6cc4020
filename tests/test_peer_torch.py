"""Our contrastive train step against an independent PyTorch implementation of the same model
(`benchmarks/peer_torch_model.py`): from identical weights and batches the loss, the gradient
norm and one AdamW step agree, and torch's FLOP counter sees exactly our analytic FLOPs.
Breaking one side (the temperature, the gradient clipping) must break the agreement."""

import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402
import peer_torch  # noqa: E402
import peer_torch_model as peer  # noqa: E402

SHAPE = (4, 64, 8)


@pytest.fixture(scope="module")
def agreement():
    return peer_torch.check_agreement("contrastive:tiny", SHAPE, jax.devices()[:1])


@pytest.mark.slow  # the twin is a benchmark's: its checks run with the slow suite
def test_twin_matches_our_loss_gradient_and_update(agreement):
    assert agreement["loss_abs_diff"] < 1e-5
    assert agreement["grad_norm_torch"] == pytest.approx(agreement["grad_norm_ours"], rel=1e-4)
    assert agreement["loss_after_step_abs_diff"] < 1e-4
    assert agreement["update_rel_error"] < 1e-2
    # The step moved the loss by far more than the two sides differ.
    moved = abs(agreement["loss_after_step_ours"] - agreement["loss_ours"])
    assert moved > 100 * agreement["loss_after_step_abs_diff"]


@pytest.mark.slow  # the twin is a benchmark's: its checks run with the slow suite
def test_a_twin_with_another_temperature_disagrees(monkeypatch):
    monkeypatch.setattr(peer.Twin, "__init__", _with_scale(peer.Twin.__init__, 2.0))
    broken = peer_torch.check_agreement("contrastive:tiny", SHAPE, jax.devices()[:1])
    assert broken["loss_abs_diff"] > 1e-3


def _with_scale(init, factor):
    def patched(self, cfg):
        init(self, cfg)
        self.scale *= factor

    return patched


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["contrastive:tiny", "contrastive:tiny+model.text.locked=True"])
def test_torch_counts_exactly_our_analytic_forward_flops(spec):
    case = common.make_case(spec, *SHAPE)
    trainer = common.trainer_for(case, jax.devices()[:1])
    twin = peer.load_twin(case.model, peer_torch.flat_params(trainer.init()))
    batch = peer.to_torch(common.host_batches(case, 1)[0], peer_torch.BATCH_KEYS)
    flops = peer_torch.check_flops(case, twin, batch)
    assert flops["torch_counted_forward"] == pytest.approx(flops["ours_forward"], rel=1e-12)


def test_twin_refuses_what_it_does_not_implement():
    case = common.make_case("contrastive:tiny+model.audio.frontend='patch'", *SHAPE)
    with pytest.raises(ValueError, match=r"audio\.frontend"):
        peer.Twin(case.model)
