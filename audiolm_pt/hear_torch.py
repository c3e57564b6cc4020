"""A thin `torch.nn.Module` over the HEAR API, for torch-only evaluation kits (hear-eval-kit,
X-ARES) that call a model's forward on CPU tensors. The JAX model does the work; torch only
carries tensors in and out, so no gradient flows through it. Needs the `torch` extra.
"""

import numpy as np
import torch

from audiolm_pt import hear


class TorchAudioEncoder(torch.nn.Module):
    """`forward(audio[n, samples]) -> scene embeddings[n, D]`; `timestamp_embeddings(audio)`
    gives ([n, T, D], [n, T] ms). Attributes mirror the HEAR model's."""

    def __init__(self, model: hear.HearModel):
        super().__init__()
        self.hear_model = model
        self.sample_rate = model.sample_rate
        self.scene_embedding_size = model.scene_embedding_size
        self.timestamp_embedding_size = model.timestamp_embedding_size

    @classmethod
    def load(cls, path: str, step: int | None = None) -> "TorchAudioEncoder":
        return cls(hear.load_model(path, step))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        scene = hear.get_scene_embeddings(_numpy(audio), self.hear_model)
        return torch.from_numpy(scene).to(audio.device)

    def timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb, ms = hear.get_timestamp_embeddings(_numpy(audio), self.hear_model)
        return torch.from_numpy(emb).to(audio.device), torch.from_numpy(ms).to(audio.device)


def _numpy(audio: torch.Tensor) -> np.ndarray:
    return audio.detach().to("cpu", torch.float32).numpy()
