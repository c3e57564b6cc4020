"""Fbank and log-mel features: goldens from the references, live reference parity, JAX vs numpy,
batching, frame counts, and properties checked by hand."""

import dataclasses
import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest
import soundfile as sf

from audiolm_pt.audio import (
    FbankConfig,
    LogMelConfig,
    fbank_jax,
    fbank_np,
    frontend,
    log_mel_jax,
    log_mel_np,
    num_fbank_frames,
    num_log_mel_frames,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "audio"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SIGNALS = ("speech", "white", "pink", "chirp")
TOL = 1e-3  # log / dB units
FEATURES = {
    "fbank": (FbankConfig, fbank_np, fbank_jax),
    "log_mel": (LogMelConfig, log_mel_np, log_mel_jax),
}
# Every configuration the goldens use, plus variants only the live references see.
CONFIGS = [(g["kind"], g["config"]) for g in MANIFEST["goldens"]] + [
    ("fbank", {"window_type": "hanning", "low_freq": 100.0, "high_freq": 7000.0}),
    ("fbank", {"sample_rate": 16000, "frame_length_ms": 32.0, "frame_shift_ms": 16.0}),
    ("log_mel", {"mel_scale": "htk", "norm": "slaney", "log": "natural", "power": 1.0}),
    ("log_mel", {"center": False, "n_mels": 40, "fmin": 300.0, "ref": 0.5, "top_db": 40.0}),
]

CONFIG_IDS = [f"{kind}{i}" for i, (kind, _) in enumerate(CONFIGS)]


def signal(name: str) -> np.ndarray:
    wave, rate = sf.read(FIXTURES / f"{name}.wav", dtype="float32")
    assert rate == 16000
    return wave


def references():
    spec = importlib.util.spec_from_file_location("make_goldens", FIXTURES / "make_goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def features(kind: str, fields: dict, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    make_cfg, host, device = FEATURES[kind]
    cfg = make_cfg(**fields)
    return host(wave, cfg), np.asarray(device(wave, cfg))


@pytest.mark.parametrize("golden", MANIFEST["goldens"], ids=lambda g: g["name"])
def test_matches_golden(golden):
    expected = np.load(FIXTURES / f"{golden['name']}.npy")
    host, device = features(golden["kind"], golden["config"], signal(golden["signal"]))
    assert host.shape == device.shape == expected.shape
    assert host.dtype == device.dtype == np.float32
    np.testing.assert_allclose(host, expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(device, expected, rtol=0, atol=TOL)


@pytest.mark.reference
@pytest.mark.parametrize("name", SIGNALS)
@pytest.mark.parametrize(("kind", "fields"), CONFIGS, ids=CONFIG_IDS)
def test_matches_live_reference(kind, fields, name):
    pytest.importorskip("kaldi_native_fbank" if kind == "fbank" else "librosa")
    make = references()
    reference = {"fbank": make.reference_fbank, "log_mel": make.reference_log_mel}[kind]
    wave = signal(name)
    expected = reference(wave, fields)
    host, device = features(kind, fields, wave)
    assert host.shape == expected.shape
    np.testing.assert_allclose(host, expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(device, expected, rtol=0, atol=TOL)


@pytest.mark.reference
def test_short_clips_match_kaldi_reflection():
    pytest.importorskip("kaldi_native_fbank")
    make = references()
    wave = signal("speech")[4000:]
    for n in [80, 81, 150, 239, 300, 401]:
        fields = {"snip_edges": False, "num_mel_bins": 23}
        expected = make.reference_fbank(wave[:n], fields)
        assert expected.shape[0] == num_fbank_frames(n, FbankConfig(**fields)) > 0
        np.testing.assert_allclose(fbank_np(wave[:n], FbankConfig(**fields)), expected, atol=TOL)


@pytest.mark.parametrize("name", SIGNALS)
@pytest.mark.parametrize(("kind", "fields"), CONFIGS, ids=CONFIG_IDS)
def test_jax_matches_numpy(kind, fields, name):
    host, device = features(kind, fields, signal(name))
    np.testing.assert_allclose(device, host, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["fbank", "log_mel"])
def test_batched_equals_per_example(kind):
    make_cfg, _, device = FEATURES[kind]
    cfg = make_cfg()
    # Different loudness per row: log-mel's top_db clip must follow each example's own peak.
    batch = np.stack(
        [signal(name)[:12000] * gain for name, gain in zip(SIGNALS, [1, 0.01, 0.3, 1], strict=True)]
    )
    batched = np.asarray(device(batch, cfg))
    mapped = np.asarray(jax.vmap(lambda w: device(w, cfg))(batch))
    single = np.stack([np.asarray(device(row, cfg)) for row in batch])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    np.testing.assert_allclose(mapped, single, rtol=0, atol=1e-5)
    host = FEATURES[kind][1](batch, cfg)
    np.testing.assert_allclose(host, batched, rtol=0, atol=TOL)


LENGTHS = [0, 1, 2, 79, 80, 159, 160, 161, 399, 400, 401, 559, 560, 561, 1000, 16000, 16001]
JAX_LENGTHS = [0, 1, 399, 400, 561]  # each length compiles anew: only the edges


@pytest.mark.parametrize("snip_edges", [True, False])
def test_num_fbank_frames_matches_output(snip_edges):
    rng = np.random.default_rng(0)
    for cfg in [
        FbankConfig(snip_edges=snip_edges),
        FbankConfig(snip_edges=snip_edges, frame_shift_ms=12.5),
    ]:
        for n in LENGTHS:
            wave = rng.uniform(-0.5, 0.5, n).astype(np.float32)
            expected = num_fbank_frames(n, cfg)
            assert fbank_np(wave, cfg).shape == (expected, 80)
            if n in JAX_LENGTHS:
                assert fbank_jax(wave, cfg).shape == (expected, 80)
    # Kaldi's rules by hand: whole frames only, or round(n / hop) frames.
    assert num_fbank_frames(399, FbankConfig()) == 0
    assert num_fbank_frames(400, FbankConfig()) == 1
    assert num_fbank_frames(16000, FbankConfig()) == 98
    assert num_fbank_frames(16000, FbankConfig(snip_edges=False)) == 100
    assert num_fbank_frames(239, FbankConfig(snip_edges=False)) == 1
    assert num_fbank_frames(240, FbankConfig(snip_edges=False)) == 2


@pytest.mark.parametrize("center", [True, False])
def test_num_log_mel_frames_matches_output(center):
    rng = np.random.default_rng(1)
    cfg = LogMelConfig(center=center)
    for n in [n for n in LENGTHS if n > 256 or not center]:
        wave = rng.uniform(-0.5, 0.5, n).astype(np.float32)
        assert log_mel_np(wave, cfg).shape == (num_log_mel_frames(n, cfg), 64)
        if n in JAX_LENGTHS or n == 16001:
            assert log_mel_jax(wave, cfg).shape == (num_log_mel_frames(n, cfg), 64)
    assert num_log_mel_frames(16000, LogMelConfig()) == 101  # 1 + n // hop when centred
    assert num_log_mel_frames(511, LogMelConfig(center=False)) == 0


def test_input_scale_shifts_log_energies_by_twice_log_scale():
    wave = signal("white")
    unscaled = fbank_np(wave, FbankConfig(input_scale=1.0))
    np.testing.assert_allclose(fbank_np(wave) - unscaled, 2 * np.log(32768.0), atol=1e-4)


def test_fbank_tone_peaks_in_the_bin_centred_nearest_its_mel():
    t = np.arange(16000) / 16000
    cfg = FbankConfig()

    def mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    # Kaldi's bin centres: 20 Hz to Nyquist split into 81 equal mel steps.
    centres = mel(20.0) + (mel(8000.0) - mel(20.0)) / 81 * np.arange(1, 81)
    for freq in [250.0, 1000.0, 3150.0, 6000.0]:
        wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        peak = fbank_np(wave, cfg).mean(axis=0).argmax()
        assert peak == np.abs(centres - mel(freq)).argmin(), freq


def test_db_is_scaled_natural_log():
    wave = signal("pink")
    natural = log_mel_np(wave, LogMelConfig(log="natural", eps=1e-10))
    db = log_mel_np(wave, LogMelConfig(log="db", amin=1e-10, top_db=None))
    np.testing.assert_allclose(db, 10.0 / np.log(10.0) * natural, atol=1e-4)
    clipped = log_mel_np(wave, LogMelConfig(top_db=20.0))
    assert clipped.min() == pytest.approx(clipped.max() - 20.0, abs=1e-4)


@pytest.mark.parametrize(
    ("make_cfg", "key", "value"),
    [
        (FbankConfig, "window_type", "kaiser"),
        (FbankConfig, "high_freq", 9000.0),
        (FbankConfig, "num_mel_bins", 0),
        (FbankConfig, "low_freq", 8000.0),
        (LogMelConfig, "mel_scale", "bark"),
        (LogMelConfig, "norm", "l2"),
        (LogMelConfig, "log", "log2"),
        (LogMelConfig, "win_length", 1024),
        (LogMelConfig, "fmax", 12000.0),
        (LogMelConfig, "pad_mode", "wrap"),
    ],
)
def test_bad_config_names_the_key(make_cfg, key, value):
    with pytest.raises(ValueError, match=rf"\.{key}="):
        make_cfg(**{key: value})


@pytest.mark.parametrize("function", [fbank_np, fbank_jax, log_mel_np, log_mel_jax])
def test_integer_samples_are_refused(function):
    with pytest.raises(TypeError, match="float waveform"):
        function(np.ones(16000, np.int16))


@pytest.mark.parametrize(("kind", "fields"), CONFIGS, ids=CONFIG_IDS)
def test_device_features_of_cut_segments_equal_the_host_frames(kind, fields):
    """Any window of frames, at the clip's edges or inside it, for short clips too: the
    segment the host cuts gives on device the host's frames (log-mel's top_db floor follows
    the computed frames' peak, so windows are compared without it unless they hold every
    frame)."""
    cfg = FEATURES[kind][0](**fields)
    rng = np.random.default_rng(3)
    for n in (90, 1001, 12345):
        counts = rng.integers(-3000, 3000, n).astype(np.int16)
        wave = counts / frontend.INT16_SCALE
        total = frontend.num_frames(n, cfg)
        windows = [(0, max(total, 1)), (0, 5), (max(total - 3, 0), 6), (total // 2, 7)]
        for first, count in windows:
            valid = max(0, min(count, total - first))
            whole = first == 0 and count >= total
            reference_cfg = cfg
            if kind == "log_mel" and not whole:
                reference_cfg = dataclasses.replace(cfg, top_db=None)
            segment = frontend.cut_segment(counts, first, count, cfg)
            assert segment.shape == (frontend.segment_length(count, cfg),)
            feats, mask = frontend.device_features(segment[None], np.array([valid]), reference_cfg)
            expected = frontend.features_np(wave, reference_cfg)[first : first + valid]
            assert int(mask.sum()) == valid
            np.testing.assert_allclose(np.asarray(feats)[0, :valid], expected, atol=TOL)
            assert not np.asarray(feats)[0, valid:].any()


def test_device_log_mel_floors_at_the_peak_of_valid_frames_only():
    cfg = LogMelConfig(top_db=20.0)
    counts = np.zeros(4000, np.int16)
    counts[:800] = (np.random.default_rng(0).normal(size=800) * 200).astype(np.int16)
    segment = frontend.cut_segment(counts, 0, 30, cfg)
    segment[-600:] = 30000  # past the 5 valid frames: must not set the peak
    feats, _ = frontend.device_features(segment[None], np.array([5]), cfg)
    expected = frontend.features_np(counts[:800] / frontend.INT16_SCALE, cfg)[:5]
    np.testing.assert_allclose(np.asarray(feats)[0, :5], expected, atol=TOL)
