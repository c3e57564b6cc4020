"""Text tokenizers: one interface, SentencePiece and Hugging Face backends, chosen by file."""

from pathlib import Path

from audiolm_pt.text.base import Tokenizer
from audiolm_pt.text.hf_tokenizer import HFTokenizer
from audiolm_pt.text.sentencepiece_tokenizer import SentencePieceTokenizer, train_sentencepiece

__all__ = [
    "HFTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "train_sentencepiece",
]


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A ``.model`` file is SentencePiece; a ``.json`` file, or a directory holding
    ``tokenizer.json``, is Hugging Face ``tokenizers``; a directory with only a BERT
    ``vocab.txt`` is a WordPiece tokenizer of that vocabulary."""
    path = Path(path)
    if path.is_dir():
        if not (path / "tokenizer.json").is_file() and (path / "vocab.txt").is_file():
            return HFTokenizer.from_vocab(path)
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path} (nor a vocab.txt beside it)")
    if path.suffix == ".model":
        return SentencePieceTokenizer.from_file(path)
    if path.suffix == ".json":
        return HFTokenizer.from_file(path)
    raise ValueError(f"unknown tokenizer file type {path.suffix!r} ({path}): want .model or .json")
