"""The demo's learning targets (issue 13, item 3), measured the way `launch/demo.sh` measures
them: the demo config trained for its full schedule on the demo corpus, then the evaluation
CLI's linear probes (beside their log-mel and MFCC baselines), retrieval and zero-shot
classification with plain label words in prompts the captions never use (the demo's own
evaluation options, `configs/demo.py:eval_options`).

Uses DEMO_TFDS_DIR (a built `demo` dataset) when set, otherwise builds the demo corpus first
(several minutes on 2 cores). The targets the demo does not reach yet are strict xfails, so a
recipe that reaches one turns its test red until the mark is removed."""

import json
import os
import subprocess
import sys

import pytest

from configs import demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINGLE_LABEL = ("language", "voice", "speed", "instrument_family", "tempo")
# Every encoder stage's mean+std: the pooling the demo's probe targets are measured with
# (mean+std of the output alone: about +0.06, notebooks/results/demo_levers.md).
POOLING = "stages"
MIN_MEAN_GAIN = 0.10
MIN_R1 = 0.20
MIN_ZERO_SHOT_X_CHANCE = 2.0
NOT_YET = "the demo recipe does not reach this target yet (see notebooks/results/demo_levers.md)"


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", *args], check=True, cwd=ROOT)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    data_dir = os.environ.get("DEMO_TFDS_DIR")
    if not data_dir:
        corpus, data_dir = tmp / "corpus", str(tmp / "tfds")
        _run("audiolm_pt.data.demo_corpus", f"--out={corpus}", "--num_clips=6000", "--seed=0")
        _run("audiolm_pt.data.builders", "--format=demo", f"--source_dir={corpus}",
             f"--data_dir={data_dir}")  # fmt: skip
    workdir = tmp / "run"
    _run("audiolm_pt.main", "--config=configs/demo.py:contrastive", f"--workdir={workdir}",
         f"--config.data.data_dir={data_dir}")  # fmt: skip
    out = tmp / "eval.json"
    _run("audiolm_pt.evaluate", f"--workdir={workdir}", "--evals=linear_probe,retrieval,zero_shot",
         f"--options={demo.eval_options()}", f"--output={out}")  # fmt: skip
    return json.loads(out.read_text())["results"]


def _gains(results) -> dict[str, float]:
    return {t: results["linear_probe"][t][POOLING]["gain"] for t in SINGLE_LABEL}


@pytest.mark.slow
def test_zero_shot_with_plain_label_words_beats_twice_chance(results):
    for task in ("language", "instrument_family"):
        r = results["zero_shot"][task]
        assert r["accuracy"] >= MIN_ZERO_SHOT_X_CHANCE / r["num_classes"], task


@pytest.mark.slow
def test_retrieval_is_far_above_chance(results):
    retrieval = results["retrieval"]
    for direction in ("audio_to_text", "text_to_audio"):
        assert retrieval[direction]["R@1"] >= 10 * retrieval["chance_R@1"], direction


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=NOT_YET + ": tempo probes 0.42-0.44, chance + 0.1 is 0.48")
def test_probes_are_far_above_chance(results):
    for task in SINGLE_LABEL:
        probe = results["linear_probe"][task]
        assert probe[POOLING]["test"] >= probe["chance"] + 0.1, task


@pytest.mark.slow
def test_probes_beat_the_better_baseline_by_ten_points_on_average(results):
    gains = _gains(results)
    assert sum(gains.values()) / len(gains) >= MIN_MEAN_GAIN, gains


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=NOT_YET + ": voice stays 1-3 points under log-mel")
def test_probes_beat_the_better_baseline_on_every_task(results):
    gains = _gains(results)
    assert min(gains.values()) > 0, gains


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_retrieval_r_at_1_reaches_the_target_both_ways(results):
    for direction in ("audio_to_text", "text_to_audio"):
        assert results["retrieval"][direction]["R@1"] >= MIN_R1, direction
