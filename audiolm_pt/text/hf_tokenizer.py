"""Hugging Face ``tokenizer.json`` backend: any local model the ``tokenizers`` library reads,
or a BERT WordPiece ``vocab.txt`` (with ``tokenizer_config.json``'s lower-casing)."""

import hashlib
from collections.abc import Sequence
from pathlib import Path

import tokenizers
from tokenizers.implementations import BertWordPieceTokenizer

from audiolm_pt.json_file import read_object
from audiolm_pt.text.base import Tokenizer

# Accepted spellings of each special token, BERT style first, then RoBERTa/SentencePiece style.
SPECIAL_TOKEN_NAMES = {
    "pad": ("[PAD]", "<pad>"),
    "bos": ("[CLS]", "<s>", "<bos>"),
    "eos": ("[SEP]", "</s>", "<eos>"),
    "mask": ("[MASK]", "<mask>"),
    "unk": ("[UNK]", "<unk>"),
}


class HFTokenizer(Tokenizer):
    """Wraps ``tokenizers.Tokenizer``; BERT's [CLS]/[SEP] serve as BOS/EOS."""

    def __init__(self, tokenizer: tokenizers.Tokenizer, source: str = "tokenizer"):
        self._tok = tokenizer
        # Padding and truncation are the pipeline's job; a tokenizer.json may enable either.
        self._tok.no_padding()
        self._tok.no_truncation()
        for name, candidates in SPECIAL_TOKEN_NAMES.items():
            ids = [self._tok.token_to_id(token) for token in candidates]
            found = [i for i in ids if i is not None]
            if not found:
                raise ValueError(
                    f"{source}: no {name} token (none of {list(candidates)} in the vocabulary)"
                )
            setattr(self, f"{name}_id", found[0])

    @classmethod
    def from_file(cls, path: str | Path) -> "HFTokenizer":
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # the Rust library raises a bare Exception
            raise ValueError(f"{path}: not a tokenizers file ({err})") from err
        return cls(tokenizer, str(path))

    @classmethod
    def from_vocab(cls, directory: str | Path) -> "HFTokenizer":
        """BERT WordPiece over ``directory/vocab.txt``, lower-casing unless the directory's
        ``tokenizer_config.json`` says ``do_lower_case: false``."""
        directory = Path(directory)
        config = directory / "tokenizer_config.json"
        settings = read_object(config) if config.is_file() else {}
        vocab = directory / "vocab.txt"
        wordpiece = BertWordPieceTokenizer(
            str(vocab), lowercase=settings.get("do_lower_case", True)
        )
        return cls(wordpiece._tokenizer, str(vocab))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self._tok.to_str().encode()).hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        # A tokenizer.json need not flag [CLS] etc. as special, so drop ours explicitly too.
        special = set(self.special_ids.values()) - {self.unk_id}
        kept = [int(i) for i in ids if int(i) not in special]
        return self._tok.decode(kept, skip_special_tokens=True)
