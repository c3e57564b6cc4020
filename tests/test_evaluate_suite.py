"""The evaluators end to end on in-memory splits with tiny models: encodings independent of
the batch size, the linear-probe evaluator recovering a planted spectral class through the
log-mel baseline, its baseline columns against probes fitted here on independently computed
statistics, every registered evaluator producing well-formed results, the side files
for inspecting a run (zero-shot confusion counts, retrieval examples, caption samples with
their features) checked against counts and rankings recomputed here, and merged per-step
result files."""

import csv
import json
import os

import numpy as np
import pytest
from flax import nnx
from test_evaluate_handcrafted import dct_matrix

from audiolm_pt import experiment
from audiolm_pt.analysis import run_files
from audiolm_pt.eval_summary import format_summary, probe_rows
from audiolm_pt.evaluate import probe, registry, runner, zero_shot
from audiolm_pt.evaluate import tasks as label_tasks
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.data import Clip, Split, read_records
from audiolm_pt.inference.run import Run
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
    pipeline = {"max_text_len": 12, "max_frames": 100, "tokenizer": TOKENIZER}
    config = experiment.parse({"model": model_values, "data": {"pipeline": pipeline}})
    model = AudioTextModel(config.model, rngs=nnx.Rngs(0))
    return Run(str(workdir), config, model, tokenizer, step=0)


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


def test_probe_reports_each_baseline_and_the_gain(tmp_path, splits):
    context = Context(_run("contrastive", tmp_path), None, splits=splits)
    poolings = ("mean", "mean_std", "stages")
    out = registry.get("linear_probe")(
        context, tasks=("tone",), poolings=poolings, c_grid=(0.1, 1.0)
    )["tone"]
    task = label_tasks.LabelTask.from_clips("tone", splits["train"].clips)
    data = {}
    for role, split in splits.items():
        target = label_tasks.targets(task, split.clips)
        clips = [split.clips[i] for i in target.index]
        encoded = context.encoded(role)
        data[role] = {
            "stages": np.stack([encoded[i].stage_stats.ravel() for i in target.index]),
            "logmel_stats": np.stack([np.r_[c.features.mean(0), c.features.std(0)] for c in clips]),
            "mfcc_stats": np.stack(
                [
                    np.r_[m.mean(0), m.std(0)]
                    for m in ((c.features @ dct_matrix(80).T)[:, :20] for c in clips)
                ]
            ),
            "targets": target.multi_hot,
        }
    expected = {
        name: probe.linear_probe(
            *[probe.ProbeData(data[r][name], data[r]["targets"]) for r in splits],
            multi_label=False,
            c_grid=(0.1, 1.0),
        )
        for name in ("stages", "logmel_stats", "mfcc_stats")
    }
    assert out["stages"]["test"] == pytest.approx(expected["stages"]["test"])
    for name in ("logmel_stats", "mfcc_stats"):
        for pooling in poolings:
            got = out[pooling]["baselines"][name]
            assert got["test"] == pytest.approx(expected[name]["test"])
            assert got["C"] == expected[name]["C"]
    for pooling in poolings:
        best = max(b["test"] for b in out[pooling]["baselines"].values())
        assert out[pooling]["gain"] == pytest.approx(out[pooling]["test"] - best)
    # the planted tone is a level in 20 log-mel bins: the log-mel statistics find it
    assert out["mean"]["baselines"]["logmel_stats"]["test"] == 1.0


def test_baseline_contexts_are_not_compared_with_themselves(tmp_path, splits):
    context = Context(_run("contrastive", tmp_path), None, features="mfcc_stats", splits=splits)
    out = registry.get("linear_probe")(context, tasks=("tone",), poolings=("mean",))["tone"]
    assert "baselines" not in out["mean"]
    assert out["mean"]["test"] > 0.9
    with pytest.raises(ValueError, match=r"linear_probe\.baselines"):
        registry.get("linear_probe")(context, tasks=("tone",), baselines=("chroma",))


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory, splits):
    """Every evaluator run once on a hybrid model (step 0, so side files are written)."""
    context = Context(_run("hybrid", tmp_path_factory.mktemp("hybrid")), None, splits=splits)
    options = {
        "linear_probe": {"tasks": ("tone",), "attention_steps": 25},
        "zero_shot": {"tasks": ("tone", "absent")},
        "retrieval": {"num_examples": 6},
        "captioning": {"beams": (1, 2), "meteor": False, "num_feature_samples": 3},
    }
    return context, registry.run_all(context, list(options), options)


def test_each_evaluator_logs_a_line_as_it_starts_and_ends(hybrid, caplog):
    context, _ = hybrid
    with caplog.at_level("INFO", logger="audiolm_pt.evaluate"):
        # The fixture's options: the side files the other tests read stay as they were.
        options = {"zero_shot": {"tasks": ("tone", "absent")}, "retrieval": {"num_examples": 6}}
        registry.run_all(context, list(options), options)
    lines = [r.getMessage() for r in caplog.records if r.name == "audiolm_pt.evaluate.registry"]
    assert lines[0] == "evaluate [1/2] zero_shot ..."
    assert lines[1].startswith("evaluate [1/2] zero_shot done in ")
    assert lines[2:3] == ["evaluate [2/2] retrieval ..."]
    assert len(lines) == 4


def test_every_evaluator_on_a_hybrid_model(hybrid):
    _, results = hybrid
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
        "features": np.ones((5, 4), np.float16),
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
            {**good, "features": np.full((5, 4), np.nan, np.float16)},
            {**good, "num_frames": 9},
            {"id": b"no features"},
        ]
    )
    split = read_records(records)
    assert [c.id for c in split.clips] == ["a"]
    assert split.clips[0].features.shape == (3, 4)
    assert split.clips[0].labels == {"tone": ["low", "mid"]}
    assert split.skipped == {"malformed": 2, "non_finite_features": 1, "unreadable": 1}


def test_zero_shot_confusion_matches_recount(hybrid):
    context, results = hybrid
    tone = results["zero_shot"]["tone"]
    classes = tone["confusion"]["classes"]
    assert classes == ["buzz", "high", "low", "mid"]
    labelled = [(i, c) for i, c in enumerate(context.clips("test")) if "tone" in c.labels]
    class_emb = zero_shot.class_embeddings(
        context.inference.embed_text, classes, zero_shot.TEMPLATES
    )
    expected = [[0] * len(classes) for _ in classes]
    for i, clip in labelled:
        scores = class_emb @ context.encoded("test")[i].embedding
        expected[classes.index(clip.labels["tone"][0])][int(np.argmax(scores))] += 1
    assert tone["confusion"]["counts"] == expected
    assert sum(map(sum, expected)) == tone["num_clips"] == len(labelled)
    trace = sum(expected[k][k] for k in range(len(classes)))
    assert tone["accuracy"] == pytest.approx(trace / len(labelled))
    # lists are no scalars: the flattened metrics keep only numbers
    flat = registry.scalars(results)
    assert not [k for k in flat if "confusion" in k]
    assert flat["zero_shot/tone/accuracy"] == tone["accuracy"]


def test_retrieval_examples_match_rankings(hybrid):
    context, results = hybrid
    with open(results["retrieval"]["examples"], encoding="utf-8") as f:
        saved = json.load(f)
    clips = context.clips("test")
    ids = [c.id for c in clips]
    audio = np.stack([e.embedding for e in context.encoded("test")])

    def text_scores(texts):
        return np.asarray(context.inference.embed_text(list(texts)), np.float64) @ audio.T

    assert saved["top_k"] == 5
    assert len(saved["text_to_audio"]) == len(saved["audio_to_text"]) == 6
    for example in saved["text_to_audio"]:
        row = text_scores([example["query"]])[0]
        truth = ids.index(example["query_clip"])
        best = np.argsort(-row, kind="stable")[:5]
        assert [r["clip"] for r in example["retrieved"]] == [ids[j] for j in best]
        np.testing.assert_allclose([r["score"] for r in example["retrieved"]], row[best], 1e-5)
        assert example["rank"] == 1 + int(np.sum(row > row[truth]))
        assert example["hit"] == (example["rank"] <= 5)
    captions = [(c, clip.id) for clip in clips for c in clip.captions]
    all_scores = text_scores(c for c, _ in captions)
    for example in saved["audio_to_text"]:
        k = ids.index(example["query_clip"])
        column = all_scores[:, k]
        own = np.array([owner == ids[k] for _, owner in captions])
        np.testing.assert_allclose(
            [r["score"] for r in example["retrieved"]], np.sort(column)[::-1][:5], 1e-5
        )
        for r in example["retrieved"]:
            assert r["relevant"] == (r["clip"] == ids[k])
            assert r["score"] == pytest.approx(text_scores([r["caption"]])[0, k], abs=1e-5)
        best_own = column[own].max()
        # pessimistic: other clips' captions scored equal to the best own one come first
        assert example["rank"] == 1 + int(
            np.sum(column > best_own) + np.sum((column == best_own) & ~own)
        )


def test_caption_samples_hold_features_and_captions(hybrid):
    context, results = hybrid
    cap = results["captioning"]
    with open(cap["samples"], encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    saved = np.load(cap["feature_samples"])
    clips = context.clips("test")[:3]
    assert list(saved["ids"]) == [c.id for c in clips] == [r[0] for r in rows[:3]]
    for i, clip in enumerate(clips):
        n = saved["num_frames"][i]
        assert n == len(clip.features)
        np.testing.assert_array_equal(saved["features"][i, :n], clip.features.astype(np.float16))
        assert not saved["features"][i, n:].any()
        assert [r for r in saved["references"][i] if r] == list(clip.captions)
    assert list(saved["beam_1"]) == [r[2] for r in rows[:3]]
    assert list(saved["beam_2"]) == [r[3] for r in rows[:3]]


def test_random_init_runs_write_no_side_files(tmp_path, splits):
    run = _run("contrastive", tmp_path)
    run.step = -1
    out = registry.get("retrieval")(Context(run, None, splits=splits))
    assert "examples" not in out
    assert not (tmp_path / "eval").exists()


def test_inspection_reads_what_the_evaluators_wrote(hybrid):
    """The run-inspection readers (audiolm_pt.analysis.run_files) on real side files."""
    context, results = hybrid
    workdir = context.run.workdir
    runner.save_json(workdir, 0, {"step": 0, "results": results})
    assert run_files.resolve_step(workdir, None) == 0
    saved = run_files.read_eval(workdir, 0)
    confusion = run_files.confusions(saved)["tone"]
    assert confusion["counts"].tolist() == results["zero_shot"]["tone"]["confusion"]["counts"]
    probes = run_files.linear_probe_table(saved)
    tone = results["linear_probe"]["tone"]
    assert probes.loc[("tone", "mean"), "model"] == tone["mean"]["test"]
    assert probes.loc[("tone", "mean"), "gain"] == pytest.approx(tone["mean"]["gain"])
    summary = format_summary(saved)
    assert "tone" in summary
    assert [r["pooling"] for r in probe_rows(saved)] == ["mean", "mean_std", "stages", "attention"]
    assert f"{tone['mean']['gain']:+.3f}" in summary
    examples = run_files.retrieval_examples(workdir, 0)
    assert examples["direction"].value_counts().to_dict() == {
        "text_to_audio": 6,
        "audio_to_text": 6,
    }
    samples = run_files.caption_samples(workdir, 0)
    assert len(samples["ids"]) == 3
    assert set(samples) >= {"features", "num_frames", "references", "beam_1", "beam_2"}
