"""The hand-crafted features every probe is measured against: the clips' log-mel (Kaldi fbank)
frames and their MFCCs, pooled over time by per-coefficient mean and standard deviation. For
probes that pool frames themselves (attention), the frames are averaged over consecutive
groups of `FRAME_STRIDE` (40 ms at the 10 ms hop: the conv front end's token rate).

MFCCs are the orthonormal DCT-II of each log-mel frame, first `N_MFCC` coefficients, as librosa
(`librosa.feature.mfcc(S=...)`) and Kaldi define them; Kaldi's cepstral lifter is a fixed
per-coefficient scale, which the probes' standardisation removes, so it is left out.
"""

from collections.abc import Callable

import numpy as np
import scipy.fft

N_MFCC = 20
FRAME_STRIDE = 4


def logmel_frames(features: np.ndarray) -> np.ndarray:
    return np.asarray(features, np.float32)


def mfcc_frames(features: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """[T, n_mels] log-mel -> [T, n_mfcc] MFCCs."""
    cepstra = scipy.fft.dct(np.asarray(features, np.float64), type=2, norm="ortho", axis=-1)
    return cepstra[:, :n_mfcc].astype(np.float32)


def strided(frames: np.ndarray, stride: int = FRAME_STRIDE) -> np.ndarray:
    """[T, D] -> [ceil(T / stride), D]: the mean of each group of `stride` frames (the last
    group may be shorter)."""
    frames = np.asarray(frames, np.float64)
    starts = np.arange(0, len(frames), stride)
    sums = np.add.reduceat(frames, starts, axis=0)
    counts = np.minimum(stride, len(frames) - starts)[:, None]
    return (sums / counts).astype(np.float32)


def mean_std(frames: np.ndarray) -> np.ndarray:
    """[T, D] -> [2 D]: the mean over time, then the standard deviation over time."""
    frames = np.asarray(frames, np.float64)
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)


# Baseline name -> frames of a clip's log-mel features; each is pooled by `mean_std`.
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "logmel_stats": logmel_frames,
    "mfcc_stats": mfcc_frames,
}
