"""CLI: train a SentencePiece tokenizer on a dataset's captions.

    python -m audiolm_pt.text.train_tokenizer --manifest=DIR/manifest.jsonl \
        [--split=train] [--vocab_size=8000] --output=PATH.model

``--manifest`` is a demo-style JSONL manifest (each line has ``captions: [{"text", "style"}]``
and a ``split``; only rows of ``--split`` are read, so held-out captions never shape the
vocabulary) or, for any other suffix, a plain text file with one caption per line. The same
input gives a byte-identical model.
"""

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

from audiolm_pt.text.sentencepiece_tokenizer import train_sentencepiece


def read_captions(path: str | Path, split: str | None = "train") -> Iterator[str]:
    """Captions in file order, of manifest rows in ``split`` (all rows when None).

    A malformed manifest line fails with its line number.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        if path.suffix != ".jsonl":
            yield from (line.rstrip("\n") for line in f)
            return
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if split is None or row.get("split", split) == split:
                    yield from (caption["text"] for caption in row["captions"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_number}: not a manifest line ({e!r})") from e


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", required=True, help="manifest.jsonl or a text file")
    parser.add_argument("--output", required=True, help="where to write the .model file")
    parser.add_argument("--split", default="train", help="manifest split to read ('' = all)")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
    parser.add_argument("--no_case_fold", action="store_true", help="keep letter case")
    args = parser.parse_args(argv)
    tokenizer = train_sentencepiece(
        read_captions(args.manifest, args.split or None),
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        case_fold=not args.no_case_fold,
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(tokenizer.model_proto)
    print(f"wrote {output}: vocab_size={tokenizer.vocab_size}")


if __name__ == "__main__":
    main()
