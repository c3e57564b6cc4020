"""Datasets at rest to batches: a demo-format manifest → TFDS ArrayRecord → Grain batches.

The builder and the pipeline are each tested on their own; this checks the contract between
them (schema.py) on real ArrayRecord files: features and captions arrive unchanged, stored
waveforms give the same features on the host and on the device, a dataset that cannot give
the configured features is refused, and resume is exact over the real source.
"""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

import audiolm_pt
from audiolm_pt.audio import FbankConfig, fbank_np, load_audio
from audiolm_pt.data.builders.tfds_builder import build_dataset
from audiolm_pt.data.device_features import make_featurizer
from audiolm_pt.data.pipeline import make_iterator, tfds_source
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.text import load_tokenizer

RATE = 16000
TOKENIZER = str(Path(audiolm_pt.__file__).parent / "assets" / "demo_tokenizer.model")


def _tone_mixture(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    freqs = rng.uniform(200, 3000, size=3)
    wave = sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs)
    return (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    src = root / "corpus"
    rows = []
    for i in range(12):
        split = "train" if i < 10 else "test"
        rel = f"audio/{split}/clip{i}.flac"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(src / rel, _tone_mixture(1.0 + 0.1 * i, seed=i), RATE)
        rows.append(
            {
                "id": f"clip{i}",
                "split": split,
                "audio": rel,
                "domain": "music",
                "duration": 1.0 + 0.1 * i,
                "sample_rate": RATE,
                "captions": [
                    {"text": f"a soft chord number {i}", "style": "short"},
                    {"text": "music, chord, soft", "style": "tags"},
                ],
                "labels": {"domain": "music", "tempo": ["slow", "fast"][i % 2]},
            }
        )
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_dataset(str(src), str(root / "tfds"), format="demo", name="e2e", store_waveform=True)
    return root


def _config(**overrides) -> PipelineConfig:
    values = {
        "global_batch_size": 4,
        "max_frames": 120,
        "tokenizer": TOKENIZER,
        "max_text_len": 16,
        "num_workers": 0,
        "time_masks": 0,
        "freq_masks": 0,
        "caption_style_weights": {"short": 1.0},
        "label_task": "tempo",
        "label_vocab": ("slow", "fast"),
    }
    return PipelineConfig.from_dict(values | overrides)


def _sources(data_dir) -> dict:
    return {"e2e": tfds_source("e2e", "train", str(data_dir / "tfds"))}


def test_batches_carry_the_stored_features_and_captions(data_dir):
    cfg = _config(train=False, num_epochs=1, global_batch_size=2)
    it = make_iterator({"e2e": tfds_source("e2e", "test", str(data_dir / "tfds"))}, cfg)
    batch = next(it)
    tok = load_tokenizer(TOKENIZER)
    for row in range(2):
        caption = tok.decode(batch["text_tokens"][row][batch["text_mask"][row]])
        i = int(caption.rsplit(" ", 1)[1])
        wave = load_audio(data_dir / f"corpus/audio/test/clip{i}.flac", RATE)
        ref = fbank_np(wave, FbankConfig()).astype(np.float16).astype(np.float32)
        n = int(batch["feature_mask"][row].sum())
        start = (ref.shape[0] - min(ref.shape[0], 120)) // 2  # evaluation: centre crop
        np.testing.assert_array_equal(batch["features"][row, :n], ref[start : start + n])
        assert n == min(ref.shape[0], 120)
        ids = tok.encode(f"a soft chord number {i}")
        assert batch["decoder_inputs"][row, 0] == tok.bos_id
        targets = batch["decoder_targets"][row, : len(ids) + 1]
        np.testing.assert_array_equal(targets, [*ids, tok.eos_id])
        np.testing.assert_array_equal(batch["labels"][row], np.eye(2)[i % 2])
    it.close()


@pytest.mark.parametrize("feature_source", ["host", "device"])
def test_features_from_the_stored_waveform_equal_the_stored_ones(data_dir, feature_source):
    stored = next(make_iterator(_sources(data_dir), _config(train=False, num_epochs=1)))
    cfg = _config(train=False, num_epochs=1, feature_source=feature_source)
    batch = next(make_iterator(_sources(data_dir), cfg))
    featurize = make_featurizer(cfg)
    if featurize is not None:
        batch = featurize({k: jnp.asarray(v) for k, v in batch.items()}, None)
    mask = stored["feature_mask"]
    np.testing.assert_array_equal(mask, batch["feature_mask"])
    # Stored features are float16; the other paths compute float32 from the int16 waveform.
    np.testing.assert_allclose(
        np.asarray(batch["features"])[mask], stored["features"][mask], atol=0.02
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"frontend": "log_mel"}, "stores fbank features but data.pipeline.frontend='log_mel'"),
        ({"fbank": FbankConfig(low_freq=40.0)}, r"low_freq=20.0 but data.pipeline.fbank.low_freq"),
        ({"feature_source": "host", "fbank": FbankConfig(sample_rate=8000)}, "at 16000 Hz"),
    ],
)
def test_a_dataset_that_cannot_give_the_configured_features_fails_before_reading(
    data_dir, overrides, message
):
    with pytest.raises(ValueError, match=f"data source 'e2e': .*{message}"):
        make_iterator(_sources(data_dir), _config(**overrides))


def test_resume_over_arrayrecord_matches_uninterrupted(data_dir):
    cfg = _config()
    full = make_iterator(_sources(data_dir), cfg)
    expected = [next(full) for _ in range(6)]
    first = make_iterator(_sources(data_dir), cfg)
    for _ in range(3):
        next(first)
    state = first.get_state()
    resumed = make_iterator(_sources(data_dir), cfg)
    resumed.set_state(state)
    for want in expected[3:]:
        got = next(resumed)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
