"""The HEAR 2021 API (hearbenchmark.com) over a trained run, as hear-eval-kit and
`hear-validator` load it:

    model = load_model("RUN_DIR")                         # or one checkpoint step directory
    scene = get_scene_embeddings(audio, model)            # audio float [n, samples] at 16 kHz
    emb, ms = get_timestamp_embeddings(audio, model)      # [n, T, D], [n, T] milliseconds

`load_model` returns a `torch.nn.Module` (the kits accept only torch or TensorFlow modules);
the JAX model does the work, torch carries the tensors in and out, on the caller's device.
Scene embeddings are the run's audio embeddings (joint space, L2-normalised; mean-pooled
encoder features for models without a contrastive head); timestamp embeddings are the
encoder's output tokens at their centre times (a 40 ms hop for the conv front end). Audio is
a float tensor (or array) in [-1, 1] at the model's sample rate; anything else raises a
`ValueError` saying what was expected. Needs torch (the `torch` extra).
"""

import numpy as np
import torch

from audiolm_pt.api import AudioModel, load

# The rates HEAR's tasks are resampled to.
HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)


class HearModel(torch.nn.Module):
    """`forward(audio)` gives the scene embeddings; the attributes are HEAR's."""

    def __init__(self, model: AudioModel):
        super().__init__()
        if model.sample_rate not in HEAR_SAMPLE_RATES:
            raise ValueError(
                f"data.pipeline front end sample_rate={model.sample_rate}: HEAR feeds audio at one "
                f"of {HEAR_SAMPLE_RATES} Hz"
            )
        self.model = model
        self.sample_rate = model.sample_rate
        cfg = model.run.model_cfg
        self.timestamp_embedding_size = cfg.audio.transformer.width
        self.scene_embedding_size = (
            cfg.heads.joint_dim if cfg.has_text_encoder else self.timestamp_embedding_size
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return get_scene_embeddings(audio, self)


def load_model(model_file_path: str = "", step: int | None = None) -> HearModel:
    if not model_file_path:
        raise ValueError("load_model needs a run directory or checkpoint path")
    return HearModel(load(model_file_path, step))


def _batch(audio) -> np.ndarray:
    """A [n_sounds, n_samples] float32 array of `audio`, or a ValueError."""
    if isinstance(audio, torch.Tensor):
        if not audio.is_floating_point():
            raise ValueError(f"audio must be a float tensor in [-1, 1], got {audio.dtype}")
        audio = audio.detach().to("cpu", torch.float32).numpy()
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    if audio.ndim != 2 or 0 in audio.shape:
        raise ValueError(f"audio must be [n_sounds, n_samples], got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("audio holds NaN or infinite samples")
    return audio.astype(np.float32)


def _like(array: np.ndarray, audio) -> torch.Tensor:
    device = audio.device if isinstance(audio, torch.Tensor) else "cpu"
    return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(device)


def get_scene_embeddings(audio, model: HearModel) -> torch.Tensor:
    """[n_sounds, scene_embedding_size] float32."""
    scene = model.model.embed_audio(_batch(audio), model.sample_rate)
    return _like(scene, audio)


def get_timestamp_embeddings(audio, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """([n_sounds, T, D] embeddings, [n_sounds, T] centre times in ms); sounds in a batch
    have one length, so they share T."""
    pairs = model.model.frame_embeddings(_batch(audio), model.sample_rate)
    emb = np.stack([frames for frames, _ in pairs])
    ms = np.stack([times for _, times in pairs]) * 1000.0
    return _like(emb, audio), _like(ms, audio)
