"""Audio front-end: decoding files to waveforms, and Kaldi fbank / librosa-style log-mel
features computed identically on the host (numpy) and on device (JAX), selected by name
(`frontend`)."""

from audiolm_pt.audio.fbank import FbankConfig, fbank_jax, fbank_np, num_fbank_frames
from audiolm_pt.audio.frontend import FRONTENDS, FrontendConfig
from audiolm_pt.audio.loading import REASONS, AudioError, is_silent, load_audio
from audiolm_pt.audio.log_mel import LogMelConfig, log_mel_jax, log_mel_np, num_log_mel_frames

__all__ = [
    "FRONTENDS",
    "REASONS",
    "AudioError",
    "FbankConfig",
    "FrontendConfig",
    "LogMelConfig",
    "fbank_jax",
    "fbank_np",
    "is_silent",
    "load_audio",
    "log_mel_jax",
    "log_mel_np",
    "num_fbank_frames",
    "num_log_mel_frames",
]
