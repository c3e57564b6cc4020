"""librosa-style log-mel spectrograms on the host (numpy) and device (JAX).

The numbers are those of ``librosa.feature.melspectrogram`` followed by ``librosa.power_to_db``
(or a natural log), which the tests check against, without depending on librosa: centred STFT
with a periodic Hann window, mel filterbank on the HTK or Slaney scale with Slaney or no
normalisation. Output is time-major, ``[..., T, n_mels]`` (librosa's transpose).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from audiolm_pt.audio import framing, mel, spectrum

PAD_MODES = ("constant", "reflect", "edge")
LOG_MODES = ("db", "natural")


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
    """Log-mel options; defaults: 16 kHz, 25 ms Hann every 10 ms in a 512-point FFT, 64 Slaney
    mels from 0 Hz to Nyquist (``fmax=None``), power spectrum, dB with librosa's defaults.

    ``log='db'``: ``10 log10(max(S, amin)) - 10 log10(max(ref, amin))``, then clipped to
    ``top_db`` below the clip's peak (``None`` or ``inf`` keeps everything; command-line
    flags can say only the latter). ``log='natural'``:
    ``ln(max(S, eps))``.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 2.0
    log: str = "db"
    amin: float = 1e-10
    ref: float = 1.0
    top_db: float | None = 80.0
    eps: float = 1e-6

    def __post_init__(self):
        checks = {
            "sample_rate": self.sample_rate > 0,
            "n_fft": self.n_fft >= 2,
            "win_length": 1 <= self.win_length <= self.n_fft,
            "hop_length": self.hop_length >= 1,
            "n_mels": self.n_mels >= 1,
            "fmin": 0.0 <= self.fmin < self.max_hz,
            "fmax": 0.0 < self.max_hz <= 0.5 * self.sample_rate,
            "mel_scale": self.mel_scale in mel.MEL_SCALES,
            "norm": self.norm in mel.MEL_NORMS,
            "pad_mode": self.pad_mode in PAD_MODES,
            "power": self.power > 0,
            "log": self.log in LOG_MODES,
            "amin": self.amin > 0,
            "ref": self.ref > 0,
            "top_db": self.top_db is None or self.top_db >= 0,
            "eps": self.eps > 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"LogMelConfig.{key}={getattr(self, key)!r} is invalid")

    @property
    def max_hz(self) -> float:
        """Upper edge of the filterbank: ``fmax``, or Nyquist when unset."""
        return 0.5 * self.sample_rate if self.fmax is None else self.fmax


def num_log_mel_frames(num_samples: int, cfg: LogMelConfig) -> int:
    """Number of frames ``log_mel_np``/``log_mel_jax`` return for ``num_samples`` samples."""
    padded = num_samples + (2 * (cfg.n_fft // 2) if cfg.center else 0)
    return max(0, 1 + (padded - cfg.n_fft) // cfg.hop_length)


def _log_mel(wave, cfg: LogMelConfig, xp):
    count = num_log_mel_frames(wave.shape[-1], cfg)
    if cfg.center:
        half = cfg.n_fft // 2
        wave = xp.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(half, half)], mode=cfg.pad_mode)
    idx = framing.frame_indices(cfg.n_fft, cfg.hop_length, count)
    window = framing.periodic_hann(cfg.win_length, cfg.n_fft)
    frames = wave[..., idx] * xp.asarray(window, wave.dtype)
    energy = spectrum.power_spectrum(frames, cfg.n_fft, xp, cfg.power)
    bank = mel.mel_filterbank(
        cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.max_hz, cfg.mel_scale, cfg.norm
    )
    energies = spectrum.project(energy, bank, xp)
    if cfg.log == "natural":
        return xp.log(xp.maximum(energies, cfg.eps))
    db = 10.0 * xp.log10(xp.maximum(energies, cfg.amin)) - 10.0 * np.log10(max(cfg.ref, cfg.amin))
    return clip_top_db(db, cfg, xp)


def clip_top_db(db, cfg: LogMelConfig, xp, frame_mask=None):
    """dB values ``[..., T, n_mels]`` floored at ``top_db`` below each example's peak (as is
    when ``top_db`` or ``log='natural'`` says so); with ``frame_mask [..., T]`` the peak is
    taken over the valid frames only (padding must not set it)."""
    if cfg.top_db is None or cfg.log == "natural":
        return db
    candidates = db if frame_mask is None else xp.where(frame_mask[..., None], db, -np.inf)
    peak = candidates.max(axis=(-2, -1), keepdims=True, initial=-np.inf)
    return xp.maximum(db, peak - cfg.top_db)


def log_mel_np(wave: np.ndarray, cfg: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Log-mel of a float waveform ``[..., n]``: float32 ``[..., T, n_mels]``.

    ``T = num_log_mel_frames(n, cfg)``. ``top_db`` clips relative to each example's own peak.
    """
    features = _log_mel(spectrum.as_signal(np.asarray(wave), np), cfg, np)
    return features.astype(np.float32, copy=False)


@functools.partial(jax.jit, static_argnames="cfg")
def log_mel_jax(wave: jax.Array, cfg: LogMelConfig = LogMelConfig()) -> jax.Array:
    """:func:`log_mel_np` in JAX (float32): jitted with ``cfg`` static, any leading batch axes."""
    return _log_mel(spectrum.as_signal(wave, jnp), cfg, jnp)
