"""The tokenizer interface every text backend implements, and the special ids it must expose."""

import abc
from collections.abc import Sequence


class Tokenizer(abc.ABC):
    """Text <-> ids with explicit special ids.

    ``mask_id`` is the all-mask decoder input of CapPa-style parallel decoding; ``encode``
    never adds BOS/EOS (the pipeline adds them where a consumer needs them).
    """

    pad_id: int
    bos_id: int
    eos_id: int
    mask_id: int
    unk_id: int

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special ids included."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A hash of everything that decides the ids: equal only for equal tokenizers."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without BOS/EOS."""

    @abc.abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids are dropped."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    @property
    def special_ids(self) -> dict[str, int]:
        return {
            "pad": self.pad_id,
            "bos": self.bos_id,
            "eos": self.eos_id,
            "mask": self.mask_id,
            "unk": self.unk_id,
        }
