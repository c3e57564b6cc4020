"""Kaldi-compatible log mel filterbank features ("fbank") on the host (numpy) and device (JAX).

Both functions run one implementation and agree with ``kaldi-native-fbank`` (the reference the
tests check against) to about 1e-4 in log units.

Input scale: waveforms are float in [-1, 1]. Kaldi tools and the recipes built on them
(torchaudio's ``compliance.kaldi.fbank`` fed int16-range audio, the CaptionStew study) analyse
samples in int16 counts, so ``FbankConfig.input_scale`` (default 32768) multiplies the waveform
first; log energies then sit ``2 ln 32768 ≈ 20.8`` above those of the unscaled signal, which is
what Kaldi-trained models expect. Set ``input_scale=1.0`` to analyse the float signal as is.

Not supported (Kaldi options the study does not use): dither (features are deterministic), the
energy column, VTLN warping.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from audiolm_pt.audio import framing, mel, spectrum

# Kaldi floors mel energies at float32 epsilon before the log.
_LOG_FLOOR = float(np.finfo(np.float32).eps)


@dataclasses.dataclass(frozen=True)
class FbankConfig:
    """Kaldi fbank options; the defaults are the CaptionStew study's features.

    16 kHz, 80 bins, 25 ms povey window every 10 ms, pre-emphasis 0.97, DC removal, no dither,
    frames snipped at the edges, 20 Hz to Nyquist (``high_freq <= 0`` is an offset below
    Nyquist), FFT length rounded up to a power of two, power spectrum, natural log floored at
    float32 epsilon.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window_type: str = "povey"
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    snip_edges: bool = True
    round_to_power_of_two: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    use_power: bool = True
    use_log: bool = True
    input_scale: float = 32768.0

    def __post_init__(self):
        nyquist = 0.5 * self.sample_rate
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        checks = {
            "sample_rate": self.sample_rate > 0,
            "num_mel_bins": self.num_mel_bins >= 1,
            "frame_length_ms": self.frame_length > 1,
            "frame_shift_ms": self.frame_shift >= 1,
            "window_type": self.window_type in framing.KALDI_WINDOWS,
            "preemph_coeff": 0.0 <= self.preemph_coeff <= 1.0,
            "low_freq": 0.0 <= self.low_freq < high,
            "high_freq": 0.0 < high <= nyquist,
            "input_scale": self.input_scale > 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"FbankConfig.{key}={getattr(self, key)!r} is invalid")

    @property
    def n_mels(self) -> int:
        """Feature width, under the name ``LogMelConfig`` uses too."""
        return self.num_mel_bins

    @property
    def frame_length(self) -> int:
        """Window length in samples (Kaldi truncates, as here)."""
        return int(self.sample_rate * 0.001 * self.frame_length_ms)

    @property
    def frame_shift(self) -> int:
        """Hop in samples."""
        return int(self.sample_rate * 0.001 * self.frame_shift_ms)

    @property
    def padded_length(self) -> int:
        """FFT length."""
        if not self.round_to_power_of_two:
            return self.frame_length
        return 1 << (self.frame_length - 1).bit_length()


def num_fbank_frames(num_samples: int, cfg: FbankConfig) -> int:
    """Number of frames ``fbank_np``/``fbank_jax`` return for ``num_samples`` samples."""
    return framing.num_frames(num_samples, cfg.frame_length, cfg.frame_shift, cfg.snip_edges)


def _preemphasise(frames, c: float, xp):
    """``x[t] - c x[t - 1]`` within each frame; Kaldi pre-emphasises the first sample against
    itself. ``frames`` is a fresh array: numpy works in place, as its concatenate along the last
    axis copies row by row (half the host fbank's time)."""
    if xp is np:
        frames[..., 1:] -= c * frames[..., :-1]
        frames[..., 0] *= 1.0 - c
        return frames
    return xp.concatenate([frames[..., :1] * (1.0 - c), frames[..., 1:] - c * frames[..., :-1]], -1)


def _fbank(wave, cfg: FbankConfig, xp):
    frames = framing.kaldi_frames(wave, cfg.frame_length, cfg.frame_shift, cfg.snip_edges, xp)
    frames = frames * np.float32(cfg.input_scale)
    if cfg.remove_dc_offset:
        frames = frames - frames.mean(axis=-1, keepdims=True)
    if cfg.preemph_coeff:
        frames = _preemphasise(frames, cfg.preemph_coeff, xp)
    frames = frames * xp.asarray(
        framing.kaldi_window(cfg.window_type, cfg.frame_length), frames.dtype
    )
    energy = spectrum.power_spectrum(frames, cfg.padded_length, xp, 2.0 if cfg.use_power else 1.0)
    bank = mel.kaldi_mel_banks(
        cfg.sample_rate, cfg.padded_length, cfg.num_mel_bins, cfg.low_freq, cfg.high_freq
    )
    energies = spectrum.project(energy, bank, xp)
    return xp.log(xp.maximum(energies, _LOG_FLOOR)) if cfg.use_log else energies


def fbank_np(wave: np.ndarray, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """Kaldi fbank of a float waveform ``[..., n]`` in [-1, 1]: float32 ``[..., T, n_mels]``.

    ``T = num_fbank_frames(n, cfg)`` (0 for clips shorter than a
    frame with ``snip_edges``).
    """
    return _fbank(spectrum.as_signal(np.asarray(wave), np), cfg, np).astype(np.float32, copy=False)


@functools.partial(jax.jit, static_argnames="cfg")
def fbank_jax(wave: jax.Array, cfg: FbankConfig = FbankConfig()) -> jax.Array:
    """:func:`fbank_np` in JAX (float32): jitted with ``cfg`` static, any leading batch axes."""
    return _fbank(spectrum.as_signal(wave, jnp), cfg, jnp)
