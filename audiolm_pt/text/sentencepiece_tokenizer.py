"""SentencePiece backend: loads a ``.model`` file; trains one from captions deterministically."""

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from audiolm_pt.text.base import Tokenizer

PAD, UNK, BOS, EOS, MASK = "<pad>", "<unk>", "<s>", "</s>", "<mask>"


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model with ``<pad> <unk> <s> </s>`` built in and ``<mask>`` as a control
    symbol (control symbols are never produced from input text, so a caption containing the
    string "<mask>" cannot inject the mask id)."""

    def __init__(self, model_proto: bytes):
        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        ids = {piece: self._sp.piece_to_id(piece) for piece in (PAD, UNK, BOS, EOS, MASK)}
        missing = [piece for piece, i in ids.items() if i == self._sp.unk_id() and piece != UNK]
        if missing:
            raise ValueError(f"SentencePiece model lacks special pieces {missing}")
        self.pad_id, self.unk_id = ids[PAD], ids[UNK]
        self.bos_id, self.eos_id, self.mask_id = ids[BOS], ids[EOS], ids[MASK]

    @classmethod
    def from_file(cls, path: str | Path) -> "SentencePieceTokenizer":
        return cls(Path(path).read_bytes())

    @property
    def model_proto(self) -> bytes:
        """The serialized model: what a ``.model`` file holds."""
        return self._proto

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self._proto).hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([int(i) for i in ids])

    # The C++ processor does not pickle; Grain's spawned workers need this tokenizer.
    def __getstate__(self) -> bytes:
        return self._proto

    def __setstate__(self, proto: bytes) -> None:
        self.__init__(proto)


def train_sentencepiece(
    sentences: Iterable[str],
    vocab_size: int = 8000,
    model_type: str = "unigram",
    case_fold: bool = True,
) -> SentencePieceTokenizer:
    """Trains a model on ``sentences``; the same sentences in the same order give the same model
    (one thread, no input sampling or shuffling). ``vocab_size`` is an upper bound: a small
    corpus yields a smaller vocabulary instead of failing."""
    sentences = [s.strip() for s in sentences if s.strip()]
    if not sentences:
        raise ValueError("no non-empty sentences to train a tokenizer on")
    writer = _BytesWriter()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=writer,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type=model_type,
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc_cf" if case_fold else "nmt_nfkc",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece=PAD,
        unk_piece=UNK,
        bos_piece=BOS,
        eos_piece=EOS,
        control_symbols=[MASK],
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return SentencePieceTokenizer(writer.data)


class _BytesWriter:
    def __init__(self):
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data
