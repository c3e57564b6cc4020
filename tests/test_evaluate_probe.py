"""Linear and attention probes recover a planted signal and stay at chance on noise."""

import numpy as np

from audiolm_pt.evaluate import probe


def _one_hot(y, c):
    return np.eye(c, dtype=np.float32)[y]


def _pooled(rng, n, planted):
    x = rng.normal(size=(n, 12))
    y = np.argmax(x[:, :3], axis=1) if planted else rng.integers(0, 3, n)
    return probe.ProbeData(x, _one_hot(y, 3))


def test_linear_probe_recovers_planted_signal():
    rng = np.random.default_rng(0)
    splits = [_pooled(rng, n, True) for n in (400, 150, 300)]
    out = probe.linear_probe(*splits, multi_label=False)
    assert out["test"] > 0.9
    assert out["C"] in probe.C_GRID


def test_linear_probe_on_noise_stays_at_chance():
    rng = np.random.default_rng(1)
    splits = [_pooled(rng, n, False) for n in (400, 150, 600)]
    out = probe.linear_probe(*splits, multi_label=False)
    # chance is 1/3; the binomial std of 600 test clips is about 0.02
    assert abs(out["test"] - 1 / 3) < 0.08


def test_multi_label_probe_uses_map():
    rng = np.random.default_rng(2)

    def split(n):
        x = rng.normal(size=(n, 8))
        return probe.ProbeData(x, (x[:, :4] > 0.5).astype(np.float32))

    planted = probe.linear_probe(split(400), split(150), split(300), multi_label=True)
    assert planted["test"] > 0.9
    noise = probe.ProbeData(
        rng.normal(size=(300, 8)), (rng.random((300, 4)) > 0.7).astype(np.float32)
    )
    # macro AP of a useless scorer is about the positive rate (0.3)
    out = probe.linear_probe(split(400), split(150), noise, multi_label=True)
    assert out["test"] < 0.45


def _frames(rng, n, planted):
    """Clips of 6-20 noise frames; when planted one frame at a random place carries the class
    as a +4 offset in channel y, which a mean over frames dilutes."""
    inputs, labels = [], rng.integers(0, 3, n)
    for y in labels:
        f = rng.normal(size=(int(rng.integers(6, 21)), 8)).astype(np.float32)
        if planted:
            f[int(rng.integers(0, len(f))), y] += 4.0
        inputs.append(f)
    return probe.ProbeData(inputs, _one_hot(labels, 3))


def test_attention_probe_finds_the_planted_frame():
    rng = np.random.default_rng(3)
    splits = [_frames(rng, n, True) for n in (400, 150, 300)]
    out = probe.attention_probe(*splits, multi_label=False, steps=300)
    assert out["test"] > 0.85
    mean = probe.linear_probe(
        *[probe.ProbeData(np.stack([f.mean(0) for f in s.inputs]), s.targets) for s in splits],
        multi_label=False,
    )
    assert out["test"] > mean["test"]


def test_attention_probe_on_noise_stays_at_chance():
    rng = np.random.default_rng(4)
    splits = [_frames(rng, n, False) for n in (400, 150, 600)]
    out = probe.attention_probe(*splits, multi_label=False, steps=150)
    assert abs(out["test"] - 1 / 3) < 0.08
