"""Mel scales, filterbanks, windows and frame indices against hand-computed values and librosa."""

import numpy as np
import pytest

from audiolm_pt.audio import framing, mel


def test_mel_scales_at_hand_computed_points():
    assert mel.hz_to_mel(700.0, "htk") == pytest.approx(2595.0 * np.log10(2.0))
    # Slaney: 200/3 Hz per mel up to 1 kHz (15 mels), then 27 mels per factor 6.4.
    assert mel.hz_to_mel(500.0, "slaney") == pytest.approx(7.5)
    assert mel.hz_to_mel(1000.0, "slaney") == pytest.approx(15.0)
    assert mel.hz_to_mel(6400.0, "slaney") == pytest.approx(42.0)
    hz = np.array([0.0, 20.0, 440.0, 999.0, 1000.0, 3000.0, 8000.0, 22050.0])
    for scale in mel.MEL_SCALES:
        np.testing.assert_allclose(mel.mel_to_hz(mel.hz_to_mel(hz, scale), scale), hz, atol=1e-9)


def test_slaney_norm_gives_unit_area_filters():
    # Fine FFT grid so the sum over bins approximates the integral over Hz.
    bank = mel.mel_filterbank(16000, 16384, 40, 0.0, 8000.0, "slaney", "slaney")
    area = bank.sum(axis=0) * 16000 / 16384
    np.testing.assert_allclose(area, 1.0, atol=1e-3)
    peaks = mel.mel_filterbank(16000, 16384, 40, 0.0, 8000.0, "htk", None).max(axis=0)
    np.testing.assert_allclose(peaks, 1.0, atol=0.05)


def test_kaldi_banks_by_hand():
    bank = mel.kaldi_mel_banks(16000, 512, 23, 20.0, 0.0)
    assert bank.shape == (257, 23)
    assert not bank[-1].any()  # Kaldi ignores the Nyquist bin
    assert not bank[0].any()  # 0 Hz is below 20 Hz
    # Bin 1 (31.25 Hz) lies on the rising edge of filter 0 only: weight by hand in mel.
    step = (mel.hz_to_mel(8000.0) - mel.hz_to_mel(20.0)) / 24
    expected = (mel.hz_to_mel(31.25) - mel.hz_to_mel(20.0)) / step
    assert bank[1, 0] == pytest.approx(expected)
    assert np.count_nonzero(bank[1]) == 1
    # Adjacent triangles cross-fade: between the first and last centres, weights sum to one.
    bin_mel = mel.hz_to_mel(np.arange(257) * 16000 / 512)
    inside = (bin_mel >= mel.hz_to_mel(20.0) + step) & (bin_mel <= mel.hz_to_mel(8000.0) - step)
    assert inside.sum() > 200
    np.testing.assert_allclose(bank[inside].sum(axis=1), 1.0, atol=1e-12)


def test_windows_by_hand():
    n = 5
    hann = np.array([0.0, 0.5, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(framing.kaldi_window("hanning", n), hann, atol=1e-12)
    np.testing.assert_allclose(framing.kaldi_window("povey", n), hann**0.85, atol=1e-12)
    np.testing.assert_allclose(framing.kaldi_window("hamming", n), 0.08 + 0.92 * hann, atol=1e-12)
    periodic = framing.periodic_hann(4, 8)
    np.testing.assert_allclose(periodic, [0, 0, 0, 0.5, 1, 0.5, 0, 0], atol=1e-12)


def test_kaldi_frame_indices_reflect_at_edges():
    # 5 samples, frames of 4 every 2, not snipped: round(5 / 2) = 3 frames starting at -1, 1, 3.
    idx = framing.kaldi_frame_indices(5, 4, 2, False)
    np.testing.assert_array_equal(idx, [[0, 0, 1, 2], [1, 2, 3, 4], [3, 4, 4, 3]])
    # Two samples, a frame of 8 from -3: reflected back and forth (-3 -> 2 -> 1, 4 -> -1 -> 0).
    idx = framing.kaldi_frame_indices(2, 8, 2, False)
    np.testing.assert_array_equal(idx, [[1, 1, 0, 0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(
        framing.kaldi_frame_indices(7, 4, 3, True), [[0, 1, 2, 3], [3, 4, 5, 6]]
    )


@pytest.mark.reference
@pytest.mark.parametrize("scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
def test_filterbank_matches_librosa(scale, norm):
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels, fmin, fmax in [
        (16000, 512, 64, 0.0, 8000.0),
        (44100, 1024, 64, 50.0, 14000.0),
    ]:
        ours = mel.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, scale, norm)
        theirs = librosa.filters.mel(
            sr=sr,
            n_fft=n_fft,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            htk=scale == "htk",
            norm=norm,
            dtype=np.float64,
        )
        np.testing.assert_allclose(ours, theirs.T, rtol=1e-6, atol=1e-12)
        hz = np.linspace(0.0, fmax, 97)
        np.testing.assert_allclose(
            mel.hz_to_mel(hz, scale), librosa.hz_to_mel(hz, htk=scale == "htk"), rtol=1e-9
        )
