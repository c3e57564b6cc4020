"""The evaluators end to end on in-memory splits with tiny models: encodings independent of
the batch size, the linear-probe evaluator recovering a planted spectral class through the
log-mel baseline, every registered evaluator producing well-formed results, and merged
per-step result files."""

import csv
import json
import os

import ml_collections
import numpy as np
import pytest
from flax import nnx

from audiolm_pt import run_config
from audiolm_pt.evaluate import registry, runner
from audiolm_pt.evaluate.checkpoint import Run
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.data import Clip, Split, read_records
from audiolm_pt.models.config import preset
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.text import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "audiolm_pt", "assets", "demo_tokenizer.model")
TONES = ("low", "mid", "high")


def _run(objective, workdir):
    tokenizer = load_tokenizer(TOKENIZER)
    model_values = preset("tiny", objective).to_dict()
    model_values["audio"]["max_frames"] = 100
    config = ml_collections.ConfigDict(
        {"model": model_values, "data": {"pipeline": {"max_text_len": 12}}}
    )
    cfg = run_config.model_config(config, tokenizer)
    model = AudioTextModel(cfg, rngs=nnx.Rngs(0))
    return Run(str(workdir), config, cfg, model, tokenizer, step=0)


def _split(n, seed, extra_label=None):
    """Clips of 40-260 frames; labelled clips carry a +3 level in the 20 bins of their tone;
    every fifth clip has no tone label."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        features = rng.normal(size=(int(rng.integers(40, 261)), 80)).astype(np.float32)
        labels = {}
        if i % 5:
            k = int(rng.integers(0, 3))
            features[:, 20 * k : 20 * k + 20] += 3.0
            labels["tone"] = [TONES[k]]
        captions = (f"a {TONES[i % 3]} tone", "a steady sound")
        clips.append(Clip(f"c{seed}-{i}", features, captions, ("short", "long"), labels))
    if extra_label:
        clips.append(Clip("odd", np.zeros((50, 80), np.float32), ("x",), ("short",), extra_label))
    return Split(clips, {})


@pytest.fixture(scope="module")
def splits():
    return {
        "train": _split(60, 0),
        "valid": _split(25, 1),
        "test": _split(30, 2, {"tone": ["buzz"]}),
    }


def test_encodings_do_not_depend_on_batch_size(tmp_path, splits):
    run = _run("contrastive", tmp_path)
    one = Context(run, None, batch_size=1, splits=splits).encoded("test")
    many = Context(run, None, batch_size=7, splits=splits).encoded("test")
    again = Context(run, None, batch_size=7, splits=splits).encoded("test")
    for a, b, c in zip(one, many, again, strict=True):
        np.testing.assert_array_equal(b.embedding, c.embedding)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
        np.testing.assert_allclose(a.frames, b.frames, atol=1e-5)
    # a 260-frame clip spans three 100-frame windows: 25 + 25 + 15 tokens at a 40 ms hop
    long = next(i for i, c in enumerate(splits["test"].clips) if len(c.features) > 200)
    n = len(splits["test"].clips[long].features)
    assert len(many[long].frames) == 2 * 25 + -(-(n - 200) // 4)
    np.testing.assert_allclose(np.diff(many[long].times), 0.04, atol=1e-6)


def test_probe_evaluator_recovers_planted_tone(tmp_path, splits):
    context = Context(_run("contrastive", tmp_path), None, features="logmel_stats", splits=splits)
    out = registry.get("linear_probe")(context, tasks=("tone",), attention_steps=100)["tone"]
    assert out["metric"] == "accuracy"
    assert out["mean"]["test"] == 1.0
    assert out["attention"]["test"] > 0.9
    assert out["num_clips"] == {"train": 48, "valid": 20, "test": 24}
    assert out["unseen_label"]["test"] == 1  # the "buzz" clip: not a training class
    assert 0.2 < out["chance"] < 0.7


def test_every_evaluator_on_a_hybrid_model(tmp_path, splits):
    context = Context(_run("hybrid", tmp_path), None, splits=splits)
    options = {
        "linear_probe": {"tasks": ("tone",), "attention_steps": 25},
        "zero_shot": {"tasks": ("tone", "absent")},
        "retrieval": {},
        "captioning": {"beams": (1, 2), "meteor": False},
    }
    results = registry.run_all(context, list(options), options)
    json.dumps(results)  # the results file must be able to hold them
    zero = results["zero_shot"]
    assert zero["scoring"] == "embedding"
    assert zero["tone"]["num_classes"] == 4  # low, mid, high and the test-only buzz
    assert 0.0 <= zero["tone"]["accuracy"] <= 1.0
    assert "unavailable" in zero["absent"]
    ret = results["retrieval"]
    assert ret["num_captions"] == 2 * 30 + 1
    for direction in ("text_to_audio", "audio_to_text"):
        values = ret[direction]
        assert 0.0 <= values["R@1"] <= values["R@5"] <= values["R@10"] <= 1.0
    cap = results["captioning"]
    assert cap["num_clips"] == 31
    assert 0.0 <= cap["beam_2"]["BLEU-1"] <= 1.0
    assert cap["beam_1"]["SPICE"].startswith("unavailable")
    with open(cap["samples"], encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["id", "reference", "beam_1", "beam_2"]
    assert len(rows) == 32


def test_likelihood_zero_shot_for_captioning_models(tmp_path, splits):
    context = Context(_run("captioning", tmp_path), None, splits=splits)
    out = registry.get("zero_shot")(context, tasks=("tone",), templates=("{}",))
    assert out["scoring"] == "likelihood"
    clip = splits["test"].clips[1]
    texts = ["buzz", "high", "low", "mid"]
    scores = context.inference.caption_logprob(clip.features, texts)
    assert scores.shape == (4,)
    assert np.all(scores < 0)
    assert "unavailable" in registry.get("retrieval")(context)


def test_results_file_merges_evaluators(tmp_path):
    first = {"step": 5, "results": {"zero_shot": {"x": 1.0}}}
    runner.save_json(str(tmp_path), 5, first)
    path = runner.save_json(str(tmp_path), 5, {"step": 5, "results": {"retrieval": {"y": 2}}})
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["results"] == {"zero_shot": {"x": 1.0}, "retrieval": {"y": 2}}
    assert registry.scalars(saved["results"], "eval/") == {
        "eval/zero_shot/x": 1.0,
        "eval/retrieval/y": 2.0,
    }


class _Records(list):
    """A source whose record 1 cannot be decoded."""

    def __getitem__(self, i):
        if i == 1:
            raise OSError("corrupt record")
        return super().__getitem__(i)


def test_bad_records_are_skipped_and_counted():
    good = {
        "id": b"a",
        "fbank": np.ones((5, 4), np.float16),
        "num_frames": 3,
        "captions": [b"x"],
        "caption_styles": [b"short"],
        "label_keys": [b"tone", b"tone"],
        "label_values": [b"low", b"mid"],
    }
    records = _Records(
        [
            good,
            good,
            {**good, "fbank": np.full((5, 4), np.nan, np.float16)},
            {**good, "num_frames": 9},
            {"id": b"no features"},
        ]
    )
    split = read_records(records)
    assert [c.id for c in split.clips] == ["a"]
    assert split.clips[0].features.shape == (3, 4)
    assert split.clips[0].labels == {"tone": ["low", "mid"]}
    assert split.skipped == {"malformed": 2, "non_finite_features": 1, "unreadable": 1}
