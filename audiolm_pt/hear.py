"""The HEAR benchmark API (hearbenchmark.com) over a trained run:

    model = load_model("RUN_DIR")                         # or one checkpoint step directory
    scene = get_scene_embeddings(audio, model)            # audio float [n, samples] at 16 kHz
    emb, ms = get_timestamp_embeddings(audio, model)      # [n, T, D], [n, T] milliseconds

Scene embeddings are the run's audio embeddings (joint space, L2-normalised; mean-pooled
encoder features for models without a contrastive head); timestamp embeddings are the
encoder's output tokens at their centre times (a 40 ms hop for the conv front-end). Inputs
accept numpy or anything `np.asarray` converts (a CPU torch tensor included).
"""

import numpy as np

from audiolm_pt.api import AudioModel, load


class HearModel:
    """What HEAR asks of a model object, wrapping an `AudioModel`."""

    def __init__(self, model: AudioModel):
        self.model = model
        self.sample_rate = model.sample_rate
        cfg = model.run.model_cfg
        self.timestamp_embedding_size = cfg.audio.transformer.width
        self.scene_embedding_size = (
            cfg.heads.joint_dim if cfg.has_text_encoder else self.timestamp_embedding_size
        )


def load_model(model_file_path: str = "", step: int | None = None) -> HearModel:
    if not model_file_path:
        raise ValueError("load_model needs a run directory or checkpoint path")
    return HearModel(load(model_file_path, step))


def _batch(audio) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples], got shape {audio.shape}")
    return audio


def get_scene_embeddings(audio, model: HearModel) -> np.ndarray:
    """[n_sounds, scene_embedding_size]."""
    return model.model.embed_audio(_batch(audio), model.sample_rate).astype(np.float32)


def get_timestamp_embeddings(audio, model: HearModel) -> tuple[np.ndarray, np.ndarray]:
    """([n_sounds, T, D] embeddings, [n_sounds, T] centre times in ms); sounds in a batch
    have one length, so they share T."""
    pairs = model.model.frame_embeddings(_batch(audio), model.sample_rate)
    emb = np.stack([frames for frames, _ in pairs]).astype(np.float32)
    ms = np.stack([times for _, times in pairs]).astype(np.float32) * 1000.0
    return emb, ms
