"""Input pipeline: determinism, sharding, exact resume, crop/pad, augmentation, captions,
mixtures, buckets, bad-input counters, config validation."""

import collections
import dataclasses
import inspect
import itertools
import json
import multiprocessing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from grain._src.python.dataset.transformations import process_prefetch

from audiolm_pt.audio import FbankConfig, LogMelConfig, fbank_np, frontend, log_mel_np
from audiolm_pt.data import pipeline, transforms
from audiolm_pt.data.builders.features import encode_flac
from audiolm_pt.data.device_features import make_featurizer, spec_augment
from audiolm_pt.data.pipeline import (
    NoUsableRecordsError,
    batch_frames,
    label_vocab,
    make_iterator,
    pad_frames,
    source_sizes,
)
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.text import train_sentencepiece

WORDS = ["a dog barks", "rain falls", "a man speaks", "birds chirp", "an engine idles"]
STYLES = ("tags", "short", "long", "transcript")


def _example(i: int, num_frames: int | None = None, **overrides) -> dict:
    """Every frame of clip ``i`` holds the value ``i``, so a batch row names its clip."""
    n = 5 + i % 30 if num_frames is None else num_frames
    example = {
        "id": str(i),
        "source": "synthetic",
        "features": np.full((n, 4), i, np.float16),
        "num_frames": n,
        "waveform": b"",
        "captions": [WORDS[i % 5], f"{WORDS[(i + 1) % 5]} loudly"],
        "caption_styles": ["short", "long"],
        "label_keys": ["event", "event"],
        "label_values": [WORDS[i % 5].split()[-1], "noise"],
    }
    example.update(overrides)
    return example


def _cfg(**kw) -> PipelineConfig:
    base = {
        "global_batch_size": 4,
        "max_frames": 16,
        "num_workers": 0,
        "time_masks": 0,
        "freq_masks": 0,
        "read_threads": 2,
    }
    return PipelineConfig(**{**base, **kw})


def _ids(batch) -> list[int]:
    return [int(v) for v in batch["features"][:, 0, 0]]


def _take(it, n):
    return [next(it) for _ in range(n)]


def _run(sources, cfg, n, **kw):
    it = make_iterator(sources, cfg, process_index=0, process_count=1, **kw)
    try:
        return _take(it, n), it.skipped
    finally:
        it.close()


@pytest.fixture(scope="module")
def tokenizer():
    captions = [f"{w} {adv}" for w in WORDS for adv in ("loudly", "softly", "", "nearby")]
    return train_sentencepiece(captions * 10, vocab_size=60)


SOURCE = [_example(i) for i in range(40)]


def test_same_seed_same_batches_and_another_seed_differs():
    first, _ = _run({"a": SOURCE}, _cfg(seed=3), 6)
    again, _ = _run({"a": SOURCE}, _cfg(seed=3), 6)
    other, _ = _run({"a": SOURCE}, _cfg(seed=4), 6)
    assert [_ids(b) for b in first] == [_ids(b) for b in again]
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert [_ids(b) for b in first] != [_ids(b) for b in other]
    # One epoch of 40 clips = 10 batches covers every clip once: a global shuffle.
    epoch = [i for b in _run({"a": SOURCE}, _cfg(seed=3), 10)[0] for i in _ids(b)]
    assert sorted(epoch) == list(range(40))
    assert epoch != list(range(40))


def test_processes_hold_contiguous_rows_of_the_one_process_global_batch():
    cfg = _cfg(global_batch_size=8, seed=1)
    single, _ = _run({"a": SOURCE}, cfg, 4)
    per_process = []
    for p in range(2):
        it = make_iterator({"a": SOURCE}, cfg, process_index=p, process_count=2)
        per_process.append([_ids(b) for b in _take(it, 4)])
        assert all(len(ids) == 4 for ids in per_process[-1])
    for k in range(4):  # host 0's rows, then host 1's: the one-process batch, in its order
        assert per_process[0][k] + per_process[1][k] == _ids(single[k])
    with pytest.raises(ValueError, match="not divisible"):
        make_iterator({"a": SOURCE}, _cfg(global_batch_size=6), process_index=0, process_count=4)


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_reproduces_the_uninterrupted_stream(workers, tokenizer):
    bad = [*SOURCE[:10], _example(99, num_frames=0), *SOURCE[10:]]
    cfg = _cfg(num_workers=workers, seed=7, time_masks=2, freq_masks=1, mixup_prob=0.5)
    uninterrupted, _ = _run({"a": bad}, cfg, 8, tokenizer=tokenizer)
    it = make_iterator({"a": bad}, cfg, process_index=0, process_count=1, tokenizer=tokenizer)
    _take(it, 5)
    state = json.loads(json.dumps(it.get_state()))  # what grain.checkpoint writes and reads
    it.close()
    resumed = make_iterator({"a": bad}, cfg, process_index=0, process_count=1, tokenizer=tokenizer)
    resumed.set_state(state)
    rest = _take(resumed, 3)
    assert resumed.skipped == {"too_short": 1}  # counted before the save, restored with it
    resumed.close()
    for a, b in zip(uninterrupted[5:], rest, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_closing_mid_stream_stops_the_workers_without_grains_long_wait():
    it = make_iterator({"a": SOURCE}, _cfg(num_workers=1), process_index=0, process_count=1)
    _take(it, 2)  # the worker is now ahead, its next batches queued for a parent that stops
    it.close()
    assert multiprocessing.active_children() == []
    # Our shorter wait takes effect only while Grain's close still reads this module global.
    stop = inspect.getsource(process_prefetch.ProcessPrefetchDatasetIterator._stop_prefetch)
    assert "join(timeout=_PROCESS_KILL_TIMEOUT_S)" in stop
    assert process_prefetch._PROCESS_KILL_TIMEOUT_S == pipeline.WORKER_STOP_SECONDS


def test_crop_pad_masks_and_centre_crop_in_eval():
    ramp = np.arange(30, dtype=np.float16)[:, None] * np.ones((1, 4), np.float16)
    source = [_example(0, num_frames=7), _example(1, num_frames=30, features=ramp)]
    cfg = _cfg(global_batch_size=2, max_frames=16, train=False)
    (batch,), _ = _run({"a": source}, cfg, 1)
    assert batch["features"].shape == (2, 16, 4)
    assert batch["feature_mask"].dtype == bool
    np.testing.assert_array_equal(batch["feature_mask"].sum(1), [7, 16])
    np.testing.assert_array_equal(batch["features"][0, 7:], 0)
    np.testing.assert_array_equal(batch["features"][1, :, 0], np.arange(7, 23))  # (30-16)//2
    rng = np.random.default_rng(0)
    starts = {int(transforms.crop(ramp, 16, rng)[0, 0]) for _ in range(200)}
    assert starts == set(range(15))  # every random window start in [0, 30-16]


def test_spec_augment_widths_and_fill():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 20)).astype(np.float32)
    seen_time, seen_freq = set(), set()
    for _ in range(300):
        out = transforms.spec_augment(features, rng, 1, 8, 1, 5)
        assert out.shape == features.shape
        changed = out != features
        time_cols = np.flatnonzero(changed.all(axis=1))
        freq_rows = np.flatnonzero(changed.all(axis=0))
        seen_time.add(len(time_cols))
        seen_freq.add(len(freq_rows))
        assert np.allclose(out[changed], features.mean())
        for cols in (time_cols, freq_rows):
            assert cols.size == 0 or cols[-1] - cols[0] + 1 == cols.size  # one contiguous run
        assert len(time_cols) <= 8
        assert len(freq_rows) <= 5
    assert max(seen_time) == 8
    assert max(seen_freq) == 5
    assert min(seen_time) == 0


def test_caption_style_weights_are_respected():
    weights = {"tags": 1.0, "short": 2.0, "long": 3.0, "transcript": 0.0}
    rng = np.random.default_rng(1)
    draws = collections.Counter(
        transforms.sample_caption(list(STYLES), STYLES, weights, rng) for _ in range(6000)
    )
    assert draws["transcript"] == 0
    for style, p in (("tags", 1 / 6), ("short", 2 / 6), ("long", 3 / 6)):
        assert abs(draws[style] / 6000 - p) < 4 * np.sqrt(p * (1 - p) / 6000)
    assert transforms.sample_caption([b"x", b"y"], [b"long", b"short"], weights, None) == "x"
    assert transforms.sample_caption(["x"], ["transcript"], weights, rng) is None


def test_caption_arrays_hand_computed():
    out = transforms.caption_arrays([7, 8, 9], max_len=6, pad_id=0, bos_id=2, eos_id=3)
    np.testing.assert_array_equal(out["text_tokens"], [2, 7, 8, 9, 3, 0])
    np.testing.assert_array_equal(out["text_mask"], [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(out["decoder_inputs"], [2, 7, 8, 9, 0, 0])
    np.testing.assert_array_equal(out["decoder_targets"], [7, 8, 9, 3, 0, 0])
    np.testing.assert_array_equal(out["decoder_mask"], [1, 1, 1, 1, 0, 0])
    full = transforms.caption_arrays([4, 5, 6, 7], max_len=3, pad_id=0, bos_id=2, eos_id=3)
    np.testing.assert_array_equal(full["text_tokens"], [2, 4, 3])
    np.testing.assert_array_equal(full["text_mask"], [1, 1, 1])
    np.testing.assert_array_equal(full["decoder_inputs"], [2, 4, 5])
    np.testing.assert_array_equal(full["decoder_targets"], [4, 5, 6])
    np.testing.assert_array_equal(full["decoder_mask"], [1, 1, 1])
    with pytest.raises(ValueError, match="max_text_len"):
        transforms.caption_arrays([4], max_len=2, pad_id=0, bos_id=2, eos_id=3)


def test_text_and_labels_in_batches(tokenizer):
    cfg = _cfg(
        train=False,
        max_text_len=12,
        caption_style_weights={"short": 1.0},
        label_task="event",
        label_vocab=("barks", "falls", "noise"),
    )
    (batch,), _ = _run({"a": SOURCE[:4]}, cfg, 1, tokenizer=tokenizer)
    for row, i in enumerate(_ids(batch)):
        n = int(batch["text_mask"][row].sum()) - 2  # BOS and EOS around the caption
        assert batch["text_tokens"][row, 0] == tokenizer.bos_id
        assert batch["text_tokens"][row, n + 1] == tokenizer.eos_id
        assert tokenizer.decode(batch["text_tokens"][row, 1 : n + 1]) == WORDS[i % 5]
        assert batch["decoder_inputs"][row, 0] == tokenizer.bos_id
        assert batch["decoder_targets"][row, n] == tokenizer.eos_id
        expected = [WORDS[i % 5].endswith(w) for w in ("barks", "falls")] + [True]
        np.testing.assert_array_equal(batch["labels"][row], expected)
    assert batch["text_tokens"].dtype == np.int32
    assert batch["labels"].dtype == np.float32


def test_eval_mode_has_no_augmentation():
    ramp = np.arange(40, dtype=np.float16)[:, None] * np.ones((1, 4), np.float16)
    source = [_example(i, num_frames=40, features=ramp + i) for i in range(8)]
    cfg = _cfg(train=False, time_masks=3, freq_masks=3, mixup_prob=1.0)
    first, _ = _run({"a": source}, cfg, 2)
    again, _ = _run({"a": source}, cfg, 2)
    for k, batch in enumerate(first):
        np.testing.assert_array_equal(batch["features"], again[k]["features"])
        for row in range(4):
            np.testing.assert_array_equal(batch["features"][row], ramp[12:28] + 4 * k + row)


def test_mixup_mixes_power_and_concatenates_captions(tokenizer):
    a, b = np.full((3, 2), np.log(2.0)), np.full((5, 2), np.log(4.0))
    mixed = transforms.mix_features(a, b, 0.75)
    np.testing.assert_allclose(mixed[:3], np.log(0.75 * 2 + 0.25 * 4), rtol=1e-6)
    np.testing.assert_allclose(mixed[3:], np.log(4.0), rtol=1e-6)
    source = [_example(i, captions=[WORDS[i % 5]], caption_styles=["short"]) for i in range(20)]
    cfg = _cfg(mixup_prob=1.0, mixup_captions="concat", label_task="event", label_vocab=WORDS)
    (batch,), _ = _run({"a": source}, cfg, 1, tokenizer=tokenizer)
    for row in range(4):
        text = tokenizer.decode(batch["text_tokens"][row][batch["text_mask"][row]])
        assert " and " in text
        assert np.any(batch["features"][row, 0, 0] != np.round(batch["features"][row, 0, 0]))


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "expected"),
    [(8, 0, -1, 8), (8, 2, -1, 4), (2, 2, -1, 1), (2, 2, 3, 3)],
)
def test_read_threads_share_the_cores_among_reading_processes(
    monkeypatch, cores, workers, threads, expected
):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    cfg = PipelineConfig(num_workers=workers, read_threads=threads)
    assert cfg.resolved_read_threads() == expected


def test_length_buckets_and_pad_frames():
    source = [_example(i, num_frames=n) for i, n in enumerate([3, 5, 6, 7, 9, 30, 2, 4])]
    cfg = _cfg(train=False, bucket_frames=(4, 8), max_frames=16)
    batches, _ = _run({"a": source}, cfg, 2)
    assert [b["features"].shape[1] for b in batches] == [8, 16]
    np.testing.assert_array_equal(batches[0]["feature_mask"].sum(1), [3, 5, 6, 7])
    padded = pad_frames(batches[0], 16, cfg)
    assert padded["features"].shape == (4, 16, 4)
    np.testing.assert_array_equal(padded["feature_mask"].sum(1), [3, 5, 6, 7])


def test_mixture_weights():
    a = [_example(i) for i in range(100)]
    b = [_example(1000 + i, num_frames=6) for i in range(100)]
    cfg = _cfg(global_batch_size=10, mixture_weights={"a": 3.0, "b": 1.0})
    batches, _ = _run({"a": a, "b": b}, cfg, 20)
    from_b = sum(i >= 1000 for batch in batches for i in _ids(batch))
    assert from_b == 50  # Grain mixes deterministically in exact proportions
    with pytest.raises(ValueError, match=r"mixture_weights lacks source 'b'"):
        make_iterator({"a": a, "b": b}, _cfg(mixture_weights={"a": 1.0}), process_count=1)


class _Flaky(list):
    """A source whose record 3 cannot be read (as a corrupt ArrayRecord entry)."""

    def __getitem__(self, index):
        if index == 3:
            raise ValueError("corrupt record")
        return super().__getitem__(index)


def test_bad_input_is_skipped_and_counted(tokenizer):
    nan = np.full((6, 4), np.nan, np.float16)
    bad = [
        _example(100, num_frames=0),
        _example(101, captions=["   "], caption_styles=["short"]),
        _example(102, captions=[], caption_styles=[]),
        None,  # replaced by an unreadable record
        _example(104, num_frames=6, features=nan),
        _example(105, features=np.zeros((5,), np.float16)),
    ]
    good = [_example(i) for i in range(6)]
    source = _Flaky(bad + good)
    cfg = _cfg(global_batch_size=3, train=False)
    batches, skipped = _run({"a": source}, cfg, 2, tokenizer=tokenizer)
    assert sorted(i for b in batches for i in _ids(b)) == list(range(6))
    assert skipped == {
        "empty_caption": 1,
        "malformed": 1,
        "no_caption": 1,
        "non_finite_features": 1,
        "too_short": 1,
        "unreadable": 1,
    }


def _flac_examples(lengths, **overrides):
    rng = np.random.default_rng(0)
    waves = [(rng.normal(size=n) * 3000).astype(np.int16) for n in lengths]
    source = [
        _example(i, waveform=encode_flac(w / 32768.0, 16000), **overrides)
        for i, w in enumerate(waves)
    ]
    return waves, source


FBANK4 = {"fbank": FbankConfig(num_mel_bins=4)}
FRONTENDS = {
    "fbank": (FbankConfig(num_mel_bins=4), fbank_np),
    "log_mel": (LogMelConfig(n_mels=4), log_mel_np),
}


@pytest.mark.parametrize("name", sorted(FRONTENDS))
def test_host_features_match_the_front_end_of_the_stored_waveform(name):
    fe, reference = FRONTENDS[name]
    waves, source = _flac_examples([2000 + 400 * i for i in range(4)])
    source.append(_example(9, waveform=encode_flac(np.zeros(100), 16000)))
    source.append(_example(10))  # no stored waveform
    source.append(_example(11, waveform=b"not flac at all"))
    cfg = _cfg(
        train=False, feature_source="host", frontend=name, max_frames=64, global_batch_size=1
    )
    cfg = dataclasses.replace(cfg, **{name: fe})
    batches, _ = _run({"a": source}, cfg, 4)
    for wave, batch in zip(waves, batches, strict=True):
        expected = reference(wave.astype(np.float32) / 32768.0, fe)
        n = int(batch["feature_mask"].sum())
        assert n == len(expected)
        np.testing.assert_allclose(batch["features"][0, :n], expected, rtol=1e-6, atol=1e-6)
    it = make_iterator({"a": source}, cfg, process_count=1)
    assert len(list(it)) == 4 + (name == "log_mel")  # log-mel centres a frame on 100 samples
    reasons = {"no_waveform": 1, "undecodable_waveform": 1}
    assert it.skipped == (reasons if name == "log_mel" else {**reasons, "too_short": 1})


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("fbank", {}),
        ("fbank", {"snip_edges": False}),
        ("log_mel", {"top_db": None}),
        ("log_mel", {"top_db": None, "pad_mode": "reflect"}),
    ],
)
@pytest.mark.parametrize("train", [False, True])
def test_device_features_equal_the_host_path_crops_included(name, options, train):
    """Same seed, same crops: the segments the host cuts give on device the frames the host
    path computes (log-mel with top_db differs by design once a clip is cropped)."""
    fe = dataclasses.replace(FRONTENDS[name][0], **options)
    _, source = _flac_examples([1200, 3000, 5000, 9000, 16000, 700])
    base = _cfg(train=train, frontend=name, max_frames=40, global_batch_size=3, **{name: fe})
    host, _ = _run({"a": source}, dataclasses.replace(base, feature_source="host"), 2)
    device, _ = _run({"a": source}, dataclasses.replace(base, feature_source="device"), 2)
    featurize = make_featurizer(dataclasses.replace(base, feature_source="device"))
    for h, d in zip(host, device, strict=True):
        assert set(d) == {"waveform", "num_frames"} | set(h) - {"features", "feature_mask"}
        assert d["waveform"].dtype == np.int16
        out = jax.jit(featurize)({k: jnp.asarray(v) for k, v in d.items()}, None)
        np.testing.assert_array_equal(out["feature_mask"], h["feature_mask"])
        np.testing.assert_allclose(out["features"], h["features"], atol=2e-3, rtol=1e-4)


def test_waveform_batches_take_buckets_and_pad_to_another_hosts_bucket():
    lengths = [400 + 160 * n for n in (3, 5, 20, 9)]  # 4, 6, 21, 10 fbank frames
    _, source = _flac_examples(lengths)
    cfg = _cfg(
        train=False,
        feature_source="device",
        bucket_frames=(8, 16),
        max_frames=32,
        global_batch_size=2,
        **FBANK4,
    )
    batches, _ = _run({"a": source}, cfg, 2)
    fe = cfg.frontend_config
    assert [b["waveform"].shape[1] for b in batches] == [
        frontend.segment_length(8, fe),
        frontend.segment_length(32, fe),
    ]
    assert [batch_frames(b, cfg) for b in batches] == [8, 32]
    np.testing.assert_array_equal(batches[0]["num_frames"], [4, 6])
    padded = pad_frames(batches[0], 16, cfg)
    assert batch_frames(padded, cfg) == 16
    np.testing.assert_array_equal(
        padded["waveform"][:, : batches[0]["waveform"].shape[1]], batches[0]["waveform"]
    )
    assert not padded["waveform"][:, batches[0]["waveform"].shape[1] :].any()
    with pytest.raises(ValueError, match="32 frames > 16"):
        pad_frames(batches[1], 16, cfg)


def test_device_spec_augment_masks_valid_frames_with_the_clip_mean():
    rng = np.random.default_rng(1)
    features = jnp.asarray(rng.normal(size=(64, 50, 8)).astype(np.float32))
    valid = jnp.asarray(rng.integers(1, 51, size=64))
    mask = jnp.arange(50)[None] < valid[:, None]
    features = jnp.where(mask[..., None], features, 0.0)
    out = np.asarray(spec_augment(features, mask, jax.random.PRNGKey(0), 2, 10, 2, 3))
    changed = out != np.asarray(features)
    fill = np.asarray(jnp.sum(features, (1, 2)) / (valid * 8))
    assert changed.any()
    for b in range(64):
        assert not changed[b, int(valid[b]) :].any()  # padding untouched
        np.testing.assert_allclose(out[b][changed[b]], fill[b], rtol=1e-5)
        rows = changed[b].all(axis=1).sum()  # masked frames span every bin
        assert rows <= 2 * 10
    # Each frequency band is at most 3 bins wide: never more than 6 of 8 bins fully masked
    # (in clips longer than the 20 frames time masks can hide).
    long = [b for b in range(64) if valid[b] > 20]
    columns = [(changed[b, : int(valid[b])].all(axis=0)).sum() for b in long]
    assert max(columns) <= 6
    assert sum(columns) > 0
    none = spec_augment(features, mask, jax.random.PRNGKey(0), 0, 10, 0, 3)
    np.testing.assert_array_equal(none, features)


def test_a_training_stream_with_no_usable_record_fails_naming_the_reasons():
    # Training repeats for ever: without the bound it would spin without a batch.
    source = [_example(i) for i in range(6)]  # no stored waveform to compute features from
    cfg = _cfg(feature_source="host", global_batch_size=2)
    with pytest.raises(NoUsableRecordsError, match=r"7 records in a row.*'no_waveform': 7"):
        _run({"a": source}, cfg, 1)


def test_skips_in_a_row_reset_at_each_usable_record():
    # Two usable records in 40, in a repeating training stream: batches keep coming.
    source = [_example(i, num_frames=0) for i in range(38)] + [_example(1), _example(2)]
    batches, skipped = _run({"a": source}, _cfg(global_batch_size=2), 3)
    assert len(batches) == 3
    assert skipped["too_short"] >= 38


def test_config_rejects_unknown_and_bad_keys():
    cfg = PipelineConfig.from_dict({"global_batch_size": 8, "bucket_frames": [100, 200]})
    assert cfg.bucket_frames == (100, 200)
    with pytest.raises(ValueError, match="'batch_size'"):
        PipelineConfig.from_dict({"batch_size": 8})
    with pytest.raises(ValueError, match=r"caption_style_weights\.music"):
        PipelineConfig(caption_style_weights={"music": 1.0})
    with pytest.raises(ValueError, match="mixup_captions"):
        PipelineConfig(mixup_captions="both")
    with pytest.raises(ValueError, match="bucket_frames"):
        PipelineConfig(max_frames=100, bucket_frames=(200,))
    with pytest.raises(ValueError, match=r"fbank\.bogus"):
        PipelineConfig.from_dict({"fbank": {"bogus": 1}, "feature_source": "host"})
    with pytest.raises(ValueError, match=r"fbank\.num_mel_bins: expected int, got 'x'"):
        PipelineConfig.from_dict({"fbank": {"num_mel_bins": "x"}})


def _seen(sources, cfg) -> list[int]:
    """Every clip id of a finite stream, in order (batch size 1)."""
    it = make_iterator(sources, cfg, process_index=0, process_count=1)
    try:
        return [i for batch in it for i in _ids(batch)]
    finally:
        it.close()


# round(f * 40), at least 1, half to even: 0.0625 * 40 = 2.5 -> 2, 0.01 * 40 = 0.4 -> 1.
FRACTION_COUNTS = {0.01: 1, 0.0625: 2, 0.1: 4, 0.25: 10, 0.3: 12, 0.5: 20, 1.0: 40}


def test_data_fractions_are_nested_with_exact_counts():
    kept = {}
    for fraction, count in FRACTION_COUNTS.items():
        cfg = _cfg(global_batch_size=1, num_epochs=1, data_fraction=fraction, seed=5)
        ids = _seen({"a": SOURCE}, cfg)
        assert len(ids) == len(set(ids)) == count
        assert source_sizes({"a": SOURCE}, cfg) == {
            "a": {"records": 40, "kept": count, "fraction": fraction, "fingerprint": None}
        }
        kept[fraction] = set(ids)
    fractions = sorted(kept)
    for small, large in itertools.pairwise(fractions):
        assert kept[small] < kept[large]
    assert kept[1.0] == set(range(40))


def test_data_fraction_subset_ignores_the_shuffle_seed_and_every_epoch_reuses_it():
    def run(**kw):
        return _seen({"a": SOURCE}, _cfg(global_batch_size=1, data_fraction=0.3, **kw))

    first = run(num_epochs=3, seed=0)
    other_seed = run(num_epochs=3, seed=1)
    assert first != other_seed  # a different order ...
    assert set(first) == set(other_seed)  # ... of the same 12 clips,
    assert collections.Counter(first) == dict.fromkeys(set(first), 3)  # each once per epoch
    assert set(run(num_epochs=1, seed=0, data_fraction_seed=1)) != set(first)
    # Sources are cut independently: the same records under another name keep others.
    renamed = _seen({"b": SOURCE}, _cfg(global_batch_size=1, data_fraction=0.3, num_epochs=1))
    assert len(renamed) == 12
    assert set(renamed) != set(first)


def test_evaluation_reads_every_record_whatever_the_fraction():
    cfg = _cfg(global_batch_size=1, train=False, data_fraction=0.1)
    assert _seen({"a": SOURCE}, cfg) == list(range(40))  # in order, all of them
    sizes = source_sizes({"a": SOURCE}, cfg)["a"]  # an in-memory source has no fingerprint
    assert sizes == {"records": 40, "kept": 40, "fraction": 1.0, "fingerprint": None}


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_bad_data_fraction_fails_naming_the_key(fraction):
    with pytest.raises(ValueError, match="data_fraction"):
        PipelineConfig.from_dict({"data_fraction": fraction})


def _tagged(i: int, mood: str) -> dict:
    return _example(
        i,
        label_keys=["event", "event", "mood"],
        label_values=[WORDS[i % 5].split()[-1], "noise", mood],
    )


def test_several_label_tasks_prefix_labels_with_their_task():
    source = [_tagged(0, "calm"), _tagged(1, "noise"), _example(2)]  # clip 2 has no mood
    vocab = label_vocab(source, "event, mood")
    assert vocab == (
        "event:barks",
        "event:falls",
        "event:noise",
        "event:speaks",
        "mood:calm",
        "mood:noise",
    )
    assert label_vocab(source, "event") == ("barks", "falls", "noise", "speaks")
    cfg = _cfg(global_batch_size=3, train=False, label_task="event,mood", label_vocab=vocab)
    (batch,), _ = _run({"a": source}, cfg, 1)
    expected = {
        0: [1, 0, 1, 0, 1, 0],  # barks, noise; calm
        1: [0, 1, 1, 0, 0, 1],  # falls, noise; mood "noise" is not event "noise"
        2: [0, 0, 1, 1, 0, 0],  # speaks, noise; no mood
    }
    for row, i in enumerate(_ids(batch)):
        np.testing.assert_array_equal(batch["labels"][row], expected[i])


@pytest.mark.parametrize("label_task", ["event,,mood", "event,event", ","])
def test_bad_label_task_lists_fail_naming_the_key(label_task):
    with pytest.raises(ValueError, match="label_task"):
        PipelineConfig(label_task=label_task, label_vocab=("x",))


def test_seek_reads_on_from_a_global_batch_whatever_the_process_count():
    """What a resume with another process count relies on: seeking to global batch k gives
    the batches an uninterrupted one-process stream gives from k, row for row."""
    cfg = _cfg(global_batch_size=8, seed=1)
    it = make_iterator({"a": SOURCE}, cfg, process_index=0, process_count=1)
    expected = [_ids(b) for b in _take(it, 7)][4:]  # crosses the 5-batch epoch
    it.close()
    for count in (1, 2, 4):
        hosts = []
        for p in range(count):
            it = make_iterator({"a": SOURCE}, cfg, process_index=p, process_count=count)
            it.seek(4)
            hosts.append([_ids(b) for b in _take(it, 3)])
            it.close()
        joined = [[i for h in hosts for i in h[k]] for k in range(3)]  # host 0's rows first
        assert joined == expected, count


@pytest.mark.parametrize("source_kind", ["stored", "device"])
def test_clips_shorter_than_min_frames_are_looped_up_to_it_and_counted(source_kind):
    """A 3-frame clip with min_frames=9 arrives as 9 frames, itself three times over; the
    longer clip is untouched; the lengthening is counted by its note."""
    lengths = [400 + 160 * n for n in (2, 11)]  # 3 and 12 fbank frames
    waves, source = _flac_examples(lengths)
    frames = [
        np.arange(n * 4, dtype=np.float16).reshape(n, 4) + 100 * i for i, n in enumerate((3, 12))
    ]
    source = [dict(s, features=f, num_frames=len(f)) for s, f in zip(source, frames, strict=True)]
    cfg = _cfg(train=False, global_batch_size=2, min_frames=9, feature_source=source_kind, **FBANK4)
    (batch,), skipped = _run({"a": source}, cfg, 1)
    assert skipped == {"short_clip_repeated": 1}
    if source_kind == "stored":
        np.testing.assert_array_equal(batch["feature_mask"].sum(1), [9, 12])
        np.testing.assert_array_equal(batch["features"][0, :9], np.tile(frames[0], (3, 1)))
        np.testing.assert_array_equal(batch["features"][1, :12], frames[1])
        return
    np.testing.assert_array_equal(batch["num_frames"], [9, 12])
    looped = np.tile(waves[0], 3)
    segment = frontend.segment_length(9, cfg.frontend_config)
    np.testing.assert_array_equal(batch["waveform"][0, :segment], looped[:segment])


def test_min_frames_is_validated_by_key():
    with pytest.raises(ValueError, match="min_frames"):
        _cfg(min_frames=0)
    with pytest.raises(ValueError, match="min_frames"):
        _cfg(min_frames=17)
