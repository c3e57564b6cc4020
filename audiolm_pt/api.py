"""The inference API: `audiolm_pt.load(workdir_or_checkpoint, step=None)` returns an
`AudioModel` that embeds audio and text, classifies zero-shot, captions and gives frame
embeddings with timestamps, from waveforms or files, on whatever devices are present.

Audio inputs: a file path, a mono waveform [samples], a batch array [n, samples], or a list of
paths and waveforms, where a 2-D waveform is one multi-channel clip ([channels, samples] or
[samples, channels], the shorter axis being channels; averaged). Waveforms at another
`sample_rate` are resampled. Audio longer than the encoder's window is encoded in consecutive
windows (see `inference.batched`). Bad input raises `AudioError` naming the file or item;
`embed_files` reports per-file errors instead and keeps the others.
"""

import os
from collections.abc import Sequence

import numpy as np
import soxr

from audiolm_pt.audio import AudioError, frontend, load_audio
from audiolm_pt.evaluate.zero_shot import TEMPLATES, class_embeddings
from audiolm_pt.inference.batched import Encoded, Inference
from audiolm_pt.inference.run import Run, load_run

AudioInput = str | os.PathLike | np.ndarray


def _mono(wave: np.ndarray, name: str) -> np.ndarray:
    wave = np.asarray(wave, np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=int(np.argmin(wave.shape)))
    if wave.ndim != 1:
        raise AudioError("undecodable", name, f"expected 1 or 2 dimensions, got {wave.shape}")
    if wave.size == 0:
        raise AudioError("empty", name, "zero samples")
    if not np.isfinite(wave).all():
        raise AudioError("non_finite", name, "NaN or infinite samples")
    return wave


class AudioModel:
    """A trained run ready for inference; `batch_size` rows per device call."""

    def __init__(self, run: Run, batch_size: int = 8):
        self.run = run
        self.frontend = run.config.data.pipeline.frontend_config
        self.sample_rate = self.frontend.sample_rate
        self._inference = Inference(
            run.model, run.tokenizer, max_text_len=run.max_text_len, batch_size=batch_size
        )

    # --- audio in -------------------------------------------------------------------------
    def waveform(self, item: AudioInput, sample_rate: int | None, name: str) -> np.ndarray:
        """One input as a mono waveform at the model's rate."""
        if isinstance(item, str | os.PathLike):
            return load_audio(item, self.sample_rate)
        wave = _mono(item, name)
        rate = sample_rate or self.sample_rate
        if rate != self.sample_rate:
            wave = soxr.resample(wave, rate, self.sample_rate, quality="HQ").astype(np.float32)
        return wave

    def features(
        self, item: AudioInput, sample_rate: int | None = None, name: str = ""
    ) -> np.ndarray:
        """The run's front-end features [T, n_mels] of one input (fbank or log-mel)."""
        name = name or (os.fspath(item) if isinstance(item, str | os.PathLike) else "<array>")
        wave = self.waveform(item, sample_rate, name)
        if frontend.num_frames(wave.size, self.frontend) < 1:
            raise AudioError("empty", name, f"{wave.size} samples: shorter than one frame")
        return frontend.features_np(wave, self.frontend)

    @staticmethod
    def _items(audio) -> list[AudioInput]:
        if isinstance(audio, str | os.PathLike) or (
            isinstance(audio, np.ndarray) and audio.ndim == 1
        ):
            return [audio]
        return list(audio)

    def _all_features(self, audio, sample_rate) -> list[np.ndarray]:
        items = self._items(audio)
        return [self.features(x, sample_rate, self._name(x, i)) for i, x in enumerate(items)]

    @staticmethod
    def _name(item, index: int) -> str:
        return os.fspath(item) if isinstance(item, str | os.PathLike) else f"item {index}"

    def _encode(self, audio, sample_rate) -> list[Encoded]:
        return self._inference.encode(self._all_features(audio, sample_rate))

    # --- outputs --------------------------------------------------------------------------
    def embed_audio(self, audio, sample_rate: int | None = None) -> np.ndarray:
        """[n, E] joint-space embeddings (L2-normalised); models without an audio head give
        mean-pooled encoder features [n, D]."""
        return self.embed_features(self._all_features(audio, sample_rate))

    def embed_features(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """`embed_audio` from front-end features [T, n_mels] (e.g. a dataset's stored ones)."""
        encoded = self._inference.encode(list(features))
        return np.stack([e.embedding if e.embedding is not None else e.pooled for e in encoded])

    def embed_files(
        self, paths: Sequence[str], chunk: int = 256
    ) -> tuple[np.ndarray, dict[str, str]]:
        """Embeddings [n, E] of files; a file that fails gives a NaN row and an entry in the
        returned {path: error} map, the others are unaffected. Files are read and encoded
        `chunk` at a time, so memory holds one chunk's features, whatever the number of files."""
        good, errors = {}, {}
        for start in range(0, len(paths), chunk):
            features = {}
            for i, path in enumerate(paths[start : start + chunk], start):
                try:
                    features[i] = self.features(path)
                except (AudioError, OSError, ValueError) as err:
                    errors[path] = str(err)
            if features:
                rows = self.embed_features(list(features.values()))
                good.update(zip(features, rows, strict=True))
        if not good:
            return np.full((len(paths), 0), np.nan, np.float32), errors
        dim = len(next(iter(good.values())))
        rows = [good.get(i, np.full(dim, np.nan, np.float32)) for i in range(len(paths))]
        return np.stack(rows), errors

    def frame_embeddings(
        self, audio, sample_rate: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per input: (frame features [N, D], token centre times in seconds [N])."""
        return [(e.frames, e.times) for e in self._encode(audio, sample_rate)]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """[n, E] joint-space text embeddings (L2-normalised)."""
        return self._inference.embed_text(list(texts))

    def zero_shot(
        self,
        audio,
        class_names: Sequence[str],
        sample_rate: int | None = None,
        templates: Sequence[str] = TEMPLATES,
    ) -> np.ndarray:
        """[n, C] class probabilities: softmax of the logit-scaled cosine similarities between
        audio and prompt-ensembled class embeddings."""
        audio_emb = self.embed_audio(audio, sample_rate)
        classes = class_embeddings(self.embed_text, list(class_names), templates)
        scale = float(self.run.model.logit_scale)
        logits = scale * (audio_emb @ classes.T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def caption(
        self,
        audio,
        sample_rate: int | None = None,
        beam: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """One caption per input (centre window of long audio), by beam search (beam=1: greedy)."""
        features = self._all_features(audio, sample_rate)
        tokens = self._inference.generate(features, beam, max_length, length_penalty)
        return [self.run.tokenizer.decode(t) for t in tokens]


def load(path: str, step: int | None = None, *, batch_size: int = 8) -> AudioModel:
    """The run at `path` (a workdir, its checkpoints/ or one step's directory) at `step`."""
    return AudioModel(load_run(path, step), batch_size=batch_size)
