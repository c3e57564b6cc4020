"""The tiny contrastive model learns on the demo corpus: trained with configs/demo.py for its
full schedule, evaluated through the trainer's evaluation hook on the demo test split,
text->audio R@1 is at least 5x chance and zero-shot instrument-family accuracy at least 3x
chance (1 / number of families). Uses DEMO_TFDS_DIR (a built `demo` dataset) when set,
otherwise builds the 2,000-clip corpus first (tens of minutes on 2 cores)."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from audiolm_pt import main
from audiolm_pt.train.metrics import read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Prompts in the demo captions' tag style ("slow tempo, bass, music, ..."); the generic
# defaults ("the sound of {}.") match no demo caption.
DEMO_TEMPLATES = ("{}", "music, {}", "{}, music")


def _data_dir(tmp_path) -> str:
    if os.environ.get("DEMO_TFDS_DIR"):
        return os.environ["DEMO_TFDS_DIR"]
    corpus, tfds_dir = tmp_path / "corpus", tmp_path / "tfds"
    for args in (
        ["audiolm_pt.data.demo_corpus", f"--out={corpus}", "--num_clips=2000", "--seed=0"],
        ["audiolm_pt.data.builders", "--format=demo", f"--source_dir={corpus}",
         f"--data_dir={tfds_dir}"],
    ):  # fmt: skip
        subprocess.run([sys.executable, "-m", *args], check=True, cwd=ROOT)
    return str(tfds_dir)


@pytest.mark.slow
def test_contrastive_demo_run_learns(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    config = importlib.import_module("configs.demo").get_config("contrastive")
    config.data.data_dir = _data_dir(tmp_path)
    steps = config.train.num_steps
    config.evals.retrieval = {"every_steps": steps, "split": "test"}
    config.evals.zero_shot = {
        "every_steps": steps,
        "split": "test",
        "tasks": ["instrument_family"],
        "templates": list(DEMO_TEMPLATES),
    }
    workdir = tmp_path / "run"
    main.run(config, str(workdir))
    with open(workdir / "eval" / f"{steps}.json", encoding="utf-8") as f:
        results = json.load(f)["results"]
    retrieval = results["retrieval"]
    family = results["zero_shot"]["instrument_family"]
    print(
        f"text->audio R@1 {retrieval['text_to_audio']['R@1']:.3f} "
        f"(chance {retrieval['chance_R@1']:.4f}); instrument family zero-shot accuracy "
        f"{family['accuracy']:.3f} (chance {1 / family['num_classes']:.3f})"
    )
    assert retrieval["text_to_audio"]["R@1"] >= 5 * retrieval["chance_R@1"]
    assert family["accuracy"] >= 3 / family["num_classes"]
    assert any("eval/retrieval/text_to_audio/R@1" in row for row in read_jsonl(str(workdir)))
