"""The locked text tower's cache (LiT): five train steps reading cached caption features equal
five steps running the locked tower (losses within 1e-6), captions not precomputed are filled
on first sight and counted, and a cache file is never read for another tokenizer or tower."""

import dataclasses
import os

import jax
import numpy as np
import pytest
from flax import nnx

from audiolm_pt import sharding
from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.models.config import preset
from audiolm_pt.objectives import TEXT_FEATURES, ObjectiveConfig
from audiolm_pt.text import load_tokenizer
from audiolm_pt.train import text_cache
from audiolm_pt.train.build import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "audiolm_pt", "assets", "demo_tokenizer.model")
CAPTIONS = [
    "a dog barks twice",
    "a piano plays a slow melody",
    "a woman speaks German quickly",
    "rain falls on a roof",
    "a man speaks Polish",
    "an organ plays chords",
    "music, fast tempo, guitar",
    "a bell rings once",
]
MAX_LEN = 12


def _trainer(seed=0):
    cfg = preset("tiny")
    tokenizer = load_tokenizer(TOKENIZER)
    text = dataclasses.replace(cfg.text, vocab_size=tokenizer.vocab_size, locked=True)
    cfg = dataclasses.replace(cfg, text=text, audio=dataclasses.replace(cfg.audio, max_frames=40))
    trainer = build_trainer(
        cfg,
        ObjectiveConfig(),
        OptimizerConfig(learning_rate=3e-3, warmup_steps=0),
        sharding.ShardingConfig(ici_data=8),
        total_steps=10,
        seed=seed,
    )
    return trainer, tokenizer


def _batches(tokenizer, n=5):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        picked = rng.choice(len(CAPTIONS), 8, replace=False)
        tokens, mask = text_cache.encoder_tokens([CAPTIONS[i] for i in picked], tokenizer, MAX_LEN)
        out.append(
            {
                "features": rng.normal(size=(8, 40, 80)).astype(np.float32),
                "feature_mask": np.ones((8, 40), bool),
                "text_tokens": tokens,
                "text_mask": mask,
            }
        )
    return out


def _rows(tokens, mask):
    return {tuple(t[m]) for t, m in zip(tokens, mask, strict=True)}


def _losses(trainer, batches, transform):
    state = trainer.init()
    losses = []
    for batch in batches:
        state, metrics = trainer.step(state, transform(batch))
        losses.append(float(metrics["loss"]))
    return losses


def test_five_steps_with_the_cache_equal_five_without(tmp_path):
    trainer, tokenizer = _trainer()
    batches = _batches(tokenizer)
    cache = text_cache.build(trainer, trainer.init(), tokenizer, CAPTIONS, MAX_LEN, str(tmp_path))
    assert len(cache) == len(CAPTIONS)
    cached = cache(batches[0])
    assert TEXT_FEATURES in cached
    assert "text_tokens" not in cached
    assert cached[TEXT_FEATURES].shape == (8, 64)
    plain = _losses(trainer, batches, lambda b: b)
    with_cache = _losses(trainer, batches, cache)
    np.testing.assert_allclose(with_cache, plain, atol=1e-6, rtol=0)
    assert plain[-1] < plain[0]
    assert cache.misses == 0


def test_unseen_captions_are_computed_once_and_counted(tmp_path):
    trainer, tokenizer = _trainer()
    state = trainer.init()
    cache = text_cache.build(trainer, state, tokenizer, CAPTIONS[:4], MAX_LEN, str(tmp_path))
    batch = _batches(tokenizer, 1)[0]
    out = cache(batch)
    known = _rows(*text_cache.encoder_tokens(CAPTIONS[:4], tokenizer, MAX_LEN))
    new = _rows(batch["text_tokens"], batch["text_mask"]) - known
    assert cache.misses == len(new) > 0
    cache(batch)
    assert cache.misses == len(new)
    model = jax.jit(lambda p, r, t, m: nnx.merge(trainer.graphdef, p, r).text_features(t, m))
    direct = model(state["params"], state["rest"], batch["text_tokens"], batch["text_mask"])
    np.testing.assert_allclose(out[TEXT_FEATURES], direct, atol=1e-5)


def test_cache_files_are_keyed_by_tokenizer_and_tower(tmp_path, bert_tokenizer_dir):
    trainer, tokenizer = _trainer()
    state = trainer.init()
    text_cache.build(trainer, state, tokenizer, CAPTIONS, MAX_LEN, str(tmp_path))
    first = set(os.listdir(tmp_path))
    assert len(first) == 1
    again = text_cache.build(trainer, state, tokenizer, CAPTIONS[:3], MAX_LEN, str(tmp_path))
    assert set(os.listdir(tmp_path)) == first
    assert len(again) == len(CAPTIONS)  # all of them read from the file
    more = text_cache.build(
        trainer, state, tokenizer, [*CAPTIONS, "a cow moos"], MAX_LEN, str(tmp_path)
    )
    assert len(more) == len(CAPTIONS) + 1
    assert len(text_cache.build(trainer, state, tokenizer, [], MAX_LEN, str(tmp_path))) == len(more)
    other_tower = trainer.init(seed=1)
    text_cache.build(trainer, other_tower, tokenizer, CAPTIONS, MAX_LEN, str(tmp_path))
    assert len(set(os.listdir(tmp_path))) == 2
    other_tokenizer = load_tokenizer(bert_tokenizer_dir)
    tokens, _ = text_cache.encoder_tokens(CAPTIONS, other_tokenizer, MAX_LEN)
    assert int(tokens.max()) < trainer.model_cfg.text.vocab_size  # the ids fit the table
    text_cache.build(trainer, state, other_tokenizer, CAPTIONS, MAX_LEN, str(tmp_path))
    assert len(set(os.listdir(tmp_path))) == 3


@pytest.fixture
def bert_tokenizer_dir(tmp_path_factory):
    from bert_dirs import write_bert_dir

    return write_bert_dir(tmp_path_factory.mktemp("bert"))
