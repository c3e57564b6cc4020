"""Hand-crafted baseline features against their definitions: the orthonormal DCT-II written
out here, librosa's MFCC when installed, mean and standard deviation by hand."""

import importlib.util

import numpy as np
import pytest

from audiolm_pt.evaluate import handcrafted


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II: C[k, i] = s_k cos(pi k (2i + 1) / 2n), s_0 = sqrt(1/n), else
    sqrt(2/n)."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * i + 1) / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def _logmel(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(57, 80)) * 3.0 - 5.0).astype(np.float32)


def test_mfcc_is_the_orthonormal_dct_of_each_frame():
    logmel = _logmel()
    expected = (logmel.astype(np.float64) @ dct_matrix(80).T)[:, : handcrafted.N_MFCC]
    np.testing.assert_allclose(handcrafted.mfcc_frames(logmel), expected, rtol=1e-5, atol=1e-4)
    # the DCT is orthonormal: all coefficients keep the frame's energy
    full = handcrafted.mfcc_frames(logmel, 80)
    energy = np.sum(logmel.astype(np.float64) ** 2, 1)
    np.testing.assert_allclose(np.sum(full.astype(np.float64) ** 2, 1), energy, rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("librosa") is None, reason="librosa not installed")
def test_mfcc_matches_librosa():
    import librosa

    logmel = _logmel(1)
    reference = librosa.feature.mfcc(S=logmel.T.astype(np.float64), n_mfcc=20).T
    np.testing.assert_allclose(handcrafted.mfcc_frames(logmel), reference, rtol=1e-5, atol=1e-4)


def test_mean_std_pools_over_time():
    frames = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])
    np.testing.assert_allclose(
        handcrafted.mean_std(frames), [3.0, 12.0, np.sqrt(8 / 3), np.sqrt(8.0)], rtol=1e-6
    )


def test_strided_frames_average_groups_of_frames():
    frames = np.arange(10, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], np.float32)
    out = handcrafted.strided(frames, 4)
    np.testing.assert_allclose(out[:, 0], [1.5, 5.5, 8.5])
    np.testing.assert_allclose(out[:, 1], [-3.0, -11.0, -17.0])
