"""Tokenizers: SentencePiece training/round trip/determinism, HF tokenizer.json loading."""

import itertools
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import tokenizers
from tokenizers import models, pre_tokenizers

import audiolm_pt
from audiolm_pt.text import HFTokenizer, SentencePieceTokenizer, load_tokenizer
from audiolm_pt.text.train_tokenizer import read_captions

SOURCES = ["a dog", "rain", "a man", "an engine", "birds", "a piano", "a crowd", "the wind"]
VERBS = ["barks", "falls", "speaks", "idles", "chirp", "plays", "cheers", "howls"]
PLACES = ["outside", "in a room", "nearby", "far away", "loudly", "softly"]


def _captions() -> list[str]:
    combos = itertools.product(SOURCES, VERBS, PLACES)
    return [f"{s} {v} {p}" for s, v, p in combos]  # 384 captions


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "manifest.jsonl"
    captions = _captions()
    with path.open("w") as f:
        for i in range(0, len(captions), 2):
            pair = [{"text": c, "style": "short"} for c in captions[i : i + 2]]
            f.write(json.dumps({"id": str(i), "captions": pair}) + "\n")
    return path


@pytest.fixture(scope="module")
def sp_model(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "captions.model"
    subprocess.run(
        [sys.executable, "-m", "audiolm_pt.text.train_tokenizer", f"--manifest={manifest}",
         "--vocab_size=120", f"--output={out}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def test_read_captions_from_manifest_and_text(manifest, tmp_path):
    assert list(read_captions(manifest)) == _captions()
    text = tmp_path / "captions.txt"
    text.write_text("one caption\nanother one\n")
    assert list(read_captions(text)) == ["one caption", "another one"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"captions": [{"text": "ok"}]}\n{"id": 3}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        list(read_captions(bad))


def test_sentencepiece_round_trip_and_specials(sp_model):
    tok = load_tokenizer(sp_model)
    assert isinstance(tok, SentencePieceTokenizer)
    assert tok.vocab_size <= 120
    specials = tok.special_ids
    assert (specials["pad"], specials["unk"], specials["bos"], specials["eos"]) == (0, 1, 2, 3)
    assert len(set(specials.values())) == 5
    for caption in ["a dog barks outside", "the wind howls far away", "a piano plays softly"]:
        ids = tok.encode(caption)
        assert ids
        assert not set(ids) & set(specials.values())
        assert tok.decode(ids) == caption
    assert tok.encode_batch(["rain falls", "birds chirp"]) == [
        tok.encode("rain falls"),
        tok.encode("birds chirp"),
    ]
    # The mask piece is a control symbol: text cannot produce it, decoding drops it.
    assert tok.mask_id not in tok.encode("<mask>")
    assert tok.decode([tok.bos_id, *tok.encode("rain"), tok.mask_id, tok.eos_id]) == "rain"


def test_sentencepiece_training_is_deterministic(manifest, sp_model, tmp_path):
    again = tmp_path / "again.model"
    from audiolm_pt.text.train_tokenizer import main

    main([f"--manifest={manifest}", "--vocab_size=120", f"--output={again}"])
    assert again.read_bytes() == sp_model.read_bytes()


def test_sentencepiece_pickles(sp_model):
    tok = load_tokenizer(sp_model)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode("a crowd cheers nearby") == tok.encode("a crowd cheers nearby")
    assert clone.special_ids == tok.special_ids


def _wordpiece_json(tmp_path, specials):
    words = sorted({w for c in _captions() for w in c.split()})
    vocab = {token: i for i, token in enumerate([*specials, *words, "##s"])}
    tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = tokenizers.decoders.WordPiece()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path, vocab


def test_hf_wordpiece_tokenizer_json(tmp_path):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    path, vocab = _wordpiece_json(tmp_path, specials)
    tok = load_tokenizer(tmp_path)  # a directory holding tokenizer.json
    assert isinstance(tok, HFTokenizer)
    assert tok.special_ids == {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4}
    assert tok.vocab_size == len(vocab)
    ids = tok.encode("a dog barks")
    assert ids == [vocab["a"], vocab["dog"], vocab["barks"]]
    assert tok.encode("dogs") == [vocab["dog"], vocab["##s"]]
    assert tok.encode("zebra") == [vocab["[UNK]"]]
    assert tok.decode([tok.bos_id, *ids, tok.eos_id]) == "a dog barks"
    assert load_tokenizer(path).encode_batch(["rain", "a dog"]) == [[vocab["rain"]], ids[:2]]
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode("a dog barks") == ids


def test_hf_missing_special_token_is_named(tmp_path):
    _wordpiece_json(tmp_path, ["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    with pytest.raises(ValueError, match=r"no mask token.*\[MASK\]"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_unknown_tokenizer_file(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\n")
    with pytest.raises(ValueError, match="unknown tokenizer file type"):
        load_tokenizer(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing.model")


def test_shipped_demo_tokenizer_round_trips_captions_of_every_language():
    tok = load_tokenizer(Path(audiolm_pt.__file__).parent / "assets" / "demo_tokenizer.model")
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.mask_id not in (0, 1, 2, 3)
    captions = [
        "A woman speaks German quickly over a soft piano melody.",
        'Transcript (French): "Mon frère ouvre la fenêtre de la cuisine."',
        'Transcript (Polish): "Moja siostra czyta książkę w ogrodzie."',
        "punchy house kick drum, loop, fast tempo",
    ]
    for caption in captions:
        ids = tok.encode(caption)
        assert tok.unk_id not in ids
        assert tok.decode(ids) == caption.lower()
