"""Every experiment config builds valid dataclasses; the base recipe is the study's; unknown
keys fail at start-up naming the key, from a config file and from the command line."""

import importlib
import os
import subprocess
import sys

import pytest

from audiolm_pt import main, run_config, strict_config
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.sharding import ShardingConfig
from audiolm_pt.train.checkpointing import CheckpointConfig
from audiolm_pt.train.optimizer import OptimizerConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ("contrastive", "sigmoid", "captioning", "hybrid", "tagging")


def _load(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def _sections(config):
    return (
        run_config.model_config(config, None),
        strict_config.from_dict(ObjectiveConfig, config.objective.to_dict(), "objective"),
        OptimizerConfig.from_dict(config.optimizer.to_dict()),
        strict_config.from_dict(ShardingConfig, config.sharding.to_dict(), "sharding"),
        strict_config.from_dict(CheckpointConfig, config.checkpoint.to_dict(), "checkpoint"),
        main.loop_config(config),
    )


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
def test_every_config_and_size_builds(name, size):
    config = _load(name, size)
    model, objective, *_ = _sections(config)
    assert objective.objective == model.objective
    assert (
        model.audio.transformer.width
        == {"tiny": 64, "small": 384, "base": 768, "large": 1024}[size]
    )
    config.data.pipeline.tokenizer = "tokenizer.json"
    main.check_sections(config, model)


@pytest.mark.parametrize("arg", ["contrastive", "siglip", "captioning", "hybrid"])
@pytest.mark.parametrize("size", ["", ",tiny", ",wide"])
def test_demo_config_builds(arg, size):
    config = _load("demo", arg + size)
    model, objective, *_ = _sections(config)
    assert (model.objective, objective.objective) == (arg, arg)
    pretrained = config.model.text.init_from
    minilm = importlib.import_module("configs.common").minilm_dir()
    assert bool(pretrained) == (arg != "captioning" and bool(minilm))
    if not pretrained:
        assert config.data.pipeline.tokenizer.endswith("demo_tokenizer.model")
    width = 256 if size == ",wide" else 64
    assert [t.transformer.width for t in (model.audio, model.decoder)] == [width] * 2
    assert model.text.transformer.width == (384 if pretrained else width)  # all-MiniLM-L6-v2
    assert model.heads.joint_dim == width


def test_demo_config_rejects_an_unknown_size():
    with pytest.raises(ValueError, match="one of \\('tiny', 'wide'\\)"):
        _load("demo", "contrastive,huge")


def test_base_contrastive_is_the_study_recipe():
    model, *_ = _sections(_load("contrastive", "base"))
    assert model.audio.n_mels == 80
    assert model.heads.joint_dim == 1024
    assert model.heads.projection_depth == 2
    assert model.heads.projection_activation == "relu"
    assert not model.heads.learn_temperature
    assert model.heads.temperature_init == pytest.approx(1 / 0.07)
    bert = model.text.transformer
    assert (bert.width, bert.depth, bert.num_heads, bert.mlp_dim) == (768, 12, 12, 3072)
    assert model.text.vocab_size == 30522
    assert model.text.pooling == "cls"
    caption_model, caption_objective, *_ = _sections(_load("captioning", "base"))
    assert caption_objective.label_smoothing == 0.1
    decoder = caption_model.decoder
    assert (decoder.transformer.width, decoder.transformer.depth, decoder.max_length) == (
        768,
        6,
        128,
    )


def test_tokenizer_sets_vocabulary_and_special_ids():
    from audiolm_pt.text import load_tokenizer

    config = _load("demo", "hybrid")
    run_config.use_pretrained_tokenizer(config)  # the text tower's own, when it has one
    tok = load_tokenizer(os.path.join(ROOT, config.data.pipeline.tokenizer))
    model = run_config.model_config(config, tok)
    assert model.text.vocab_size == model.decoder.vocab_size == tok.vocab_size
    assert (model.decoder.bos_id, model.decoder.eos_id, model.decoder.mask_id) == (
        tok.bos_id,
        tok.eos_id,
        tok.mask_id,
    )


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("optimizer", "lr", "optimizer.lr"),
        ("checkpoint", "keep", "checkpoint.keep"),
        ("train", "steps", "train.steps"),
        ("objective", "smoothing", "smoothing"),
        ("sharding", "ici_dta", "sharding.ici_dta"),
        ("data", "sorce", "data.sorce"),
    ],
)
def test_unknown_key_in_config_file_fails_naming_it(tmp_path, section, key, message):
    config = _load("contrastive", "tiny")
    config.data.source = "synthetic"
    with config.unlocked():
        config[section][key] = 1
    with pytest.raises((ValueError, TypeError), match=message):
        main.run(config, str(tmp_path))


def test_unknown_model_key_fails_naming_it(tmp_path):
    config = _load("contrastive", "tiny")
    config.model.audio.widht = 3
    with pytest.raises(ValueError, match="widht"):
        main.run(config, str(tmp_path))


def test_text_objective_without_tokenizer_fails_at_start(tmp_path):
    with pytest.raises(ValueError, match=r"data\.pipeline\.tokenizer"):
        main.run(_load("contrastive", "tiny"), str(tmp_path))


def test_unknown_command_line_override_fails_naming_it(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "audiolm_pt.main",
            "--config=configs/contrastive.py:tiny",
            f"--workdir={tmp_path}",
            "--config.optimizer.lrr=3e-4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "lrr" in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_demo_uses_minilm_locked_and_falls_back_to_random_init_with_a_warning(monkeypatch, caplog):
    demo = importlib.import_module("configs.demo")
    common = importlib.import_module("configs.common")
    config = demo.get_config("contrastive")
    assert config.model.text.init_from == common.minilm_dir()
    assert config.model.text.locked
    assert config.data.pipeline.tokenizer == ""  # the tower's own
    assert demo.get_config("captioning").data.pipeline.tokenizer == demo.DEMO_TOKENIZER
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == common.MINILM_PACKAGE else real_find_spec(name, *a),
    )
    with caplog.at_level("WARNING"):
        fallback = demo.get_config("contrastive")
    assert fallback.model.text.init_from == ""
    assert not fallback.model.text.locked
    assert fallback.data.pipeline.tokenizer == demo.DEMO_TOKENIZER
    assert "randomly initialised" in caplog.text
    run_config.model_config(fallback, None)  # a valid random-init config
