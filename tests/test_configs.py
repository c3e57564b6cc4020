"""Every experiment config parses, once, into one validated object; the base recipe is the
study's; every leaf of every shipped config can be set from the command line; unknown keys,
wrong types and bad values fail at start-up naming the dotted key; `--dry_run` prints the
resolved config and the mesh without touching data."""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from absl import flags
from ml_collections import config_flags

from audiolm_pt import experiment, main
from audiolm_pt.audio import LogMelConfig
from audiolm_pt.experiment_sections import CheckpointConfig, DataConfig, TrainConfig
from audiolm_pt.models.config import ZIPFORMER_SIZES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "audiolm_pt", "assets", "demo_tokenizer.model")
FILES = ("contrastive", "sigmoid", "captioning", "hybrid", "tagging")
# Model fields a configured tokenizer decides, whatever the config says.
TOKENIZER_FIELDS = ("vocab_size", "bos_id", "eos_id", "pad_id", "mask_id")
SHIPPED = [(name, "tiny") for name in FILES] + [
    ("demo", arg) for arg in ("contrastive", "siglip", "captioning", "hybrid")
]


def _load(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def _with_tokenizer(config):
    if not config.data.pipeline.tokenizer and not config.model.text.init_from:
        config.data.pipeline.tokenizer = TOKENIZER
    return config


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
def test_every_config_and_size_parses(name, size):
    parsed = experiment.parse(_with_tokenizer(_load(name, size)))
    assert parsed.objective.objective == parsed.model.objective  # named once, derived
    assert "objective" not in _load(name, size).objective
    widths = {"tiny": 64, "small": 384, "base": 512, "large": 768}  # base, large: Zipformer
    assert parsed.model.audio.transformer.width == widths[size]
    assert parsed.data.pipeline.min_frames == parsed.model.audio.min_frames


@pytest.mark.parametrize("arg", ["contrastive", "siglip", "captioning", "hybrid"])
@pytest.mark.parametrize("size", ["", ",tiny", ",wide"])
def test_demo_config_parses(arg, size):
    config = _load("demo", arg + size)
    parsed = experiment.parse(config)
    assert parsed.model.objective == parsed.objective.objective == arg
    pretrained = config.model.text.init_from
    minilm = importlib.import_module("configs.common").minilm_dir()
    assert bool(pretrained) == (arg != "captioning" and bool(minilm))
    if pretrained:
        assert parsed.data.pipeline.tokenizer == pretrained  # the tower's own tokenizer
    else:
        assert config.data.pipeline.tokenizer.endswith("demo_tokenizer.model")
    model = parsed.model
    width = 256 if size == ",wide" else 64
    assert [t.transformer.width for t in (model.audio, model.decoder)] == [width] * 2
    assert model.text.transformer.width == (384 if pretrained else width)  # all-MiniLM-L6-v2
    assert model.heads.joint_dim == width


def test_demo_config_rejects_an_unknown_size():
    with pytest.raises(ValueError, match="one of \\('tiny', 'wide', 'zipformer'\\)"):
        _load("demo", "contrastive,huge")


def test_a_zipformer_config_needs_min_frames_for_its_embed():
    config = _load("demo", "contrastive,zipformer")
    assert experiment.parse(config).data.pipeline.min_frames == 9
    config.data.pipeline.min_frames = 1
    with pytest.raises(ValueError, match=r"data\.pipeline\.min_frames=1: the zipformer"):
        experiment.parse(config)


def test_base_contrastive_is_the_study_recipe():
    parsed = experiment.parse(_with_tokenizer(_load("contrastive", "base")))
    model = parsed.model
    assert model.audio.n_mels == 80
    assert (model.audio.encoder, model.audio.zipformer) == ("zipformer", ZIPFORMER_SIZES["M"])
    fbank = parsed.data.pipeline.fbank
    assert (fbank.sample_rate, fbank.num_mel_bins, parsed.data.pipeline.max_frames) == (
        16000,
        80,
        3000,
    )
    assert model.heads.joint_dim == 1024
    assert model.heads.projection_depth == 2
    assert model.heads.projection_activation == "relu"
    assert not model.heads.learn_temperature
    assert model.heads.temperature_init == pytest.approx(1 / 0.07)
    bert = model.text.transformer
    assert (bert.width, bert.depth, bert.num_heads, bert.mlp_dim) == (768, 12, 12, 3072)
    assert model.text.pooling == "cls"
    captioning = experiment.parse(_with_tokenizer(_load("captioning", "base")))
    assert captioning.objective.label_smoothing == 0.1
    decoder = captioning.model.decoder
    assert (decoder.transformer.width, decoder.transformer.depth, decoder.max_length) == (
        768,
        6,
        128,
    )


def test_defaults_live_in_the_section_dataclasses():
    """configs/common.py starts from the dataclasses: what it does not set for a size equals
    the dataclass default (the disagreements the issue found are gone)."""
    config = _load("contrastive", "base")
    assert config.train.num_steps == TrainConfig().num_steps
    assert config.checkpoint.keep_every == CheckpointConfig().keep_every
    parsed = experiment.parse(_with_tokenizer(config))
    assert parsed.train == TrainConfig()
    assert parsed.data.pipeline.fbank == DataConfig().pipeline.fbank


def test_tokenizer_sets_vocabulary_and_special_ids():
    parsed = experiment.parse(_load("demo", "hybrid"))
    tok = experiment.tokenizer_of(parsed)
    model = parsed.model
    assert model.text.vocab_size == model.decoder.vocab_size == tok.vocab_size
    assert (model.decoder.bos_id, model.decoder.eos_id, model.decoder.mask_id) == (
        tok.bos_id,
        tok.eos_id,
        tok.mask_id,
    )


# --- every leaf from the command line ------------------------------------------------------
def _flags(name, arg, *overrides):
    """The ConfigDict `--config=configs/<name>.py:<arg> *overrides` gives, parsed by the same
    ml_collections flag as `audiolm_pt.main`."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values)
    argv = ["prog", f"--config={ROOT}/configs/{name}.py:{arg}", *overrides]
    with mock.patch.object(sys, "argv", argv):  # the flag reads its overrides from sys.argv
        values(argv)
    return values.config


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _text(value, kind):
    if value is None:
        value = {int: 2, float: 0.5, str: "x", bool: True}[kind]
    return value if isinstance(value, str) else repr(value)


def _at(tree, path):
    for key in path:
        tree = tree[key] if isinstance(tree, dict) else getattr(tree, key)
    return tree


@pytest.mark.parametrize(("name", "arg"), SHIPPED)
def test_every_leaf_of_every_shipped_config_is_overridable(name, arg):
    """Each leaf set to its own value (a typed placeholder's to a sample value) on the command
    line parses, and the parsed config holds it; a number or bool leaf given text fails
    naming its dotted key."""
    base = _with_tokenizer(_load(name, arg))
    tokenizer = [f"--config.data.pipeline.tokenizer={base.data.pipeline.tokenizer}"]
    leaves = list(_leaves(base.to_dict()))
    assert len(leaves) > 100
    for path, value in leaves:
        key = ".".join(path)
        node = base
        for part in path[:-1]:
            node = node[part]
        kind = node.get_type(path[-1])
        config = _flags(name, arg, *tokenizer, f"--config.{key}={_text(value, kind)}")
        got = _at(experiment.as_dict(experiment.parse(config)), path)
        expected = value if value is not None else {int: 2, float: 0.5}[kind]
        if key == "data.pipeline.tokenizer" and not value:
            continue  # a pretrained tower's tokenizer is filled in by the parse
        if path[0] == "model" and path[-1] in TOKENIZER_FIELDS:
            continue  # the tokenizer's, whatever the config says
        if path[0] == "model" and path[1] == "text" and base.model.text.init_from:
            continue  # the pretrained tower's shape, whatever the config says
        assert json.loads(json.dumps(got)) == json.loads(json.dumps(expected)), key
        if kind in (int, float, bool):
            with pytest.raises((flags.Error, ValueError), match=key.replace(".", r"\.")):
                _flags(name, arg, f"--config.{key}=abc")


OVERRIDES = [
    ("data.pipeline.bucket_frames", "(100,200,500)", (100, 200, 500)),
    ("data.pipeline.caption_style_weights.short", "2", 2.0),
    ("data.pipeline.mixup_prob", "0.3", 0.3),
    ("data.pipeline.max_time_mask", "20", 20),
    ("data.pipeline.freq_masks", "0", 0),
    ("data.pipeline.feature_source", "device", "device"),
    ("data.pipeline.fbank.low_freq", "40.0", 40.0),
    ("data.pipeline.log_mel.top_db", "inf", float("inf")),  # no floor (flags cannot say None)
    ("data.pipeline.mixture_weights", "{'demo': 2.0}", {"demo": 2.0}),
    ("data.pipeline.num_epochs", "3", 3),
    ("optimizer.rsqrt_timescale", "500", 500),
    ("optimizer.frozen", "('text_encoder',)", ("text_encoder",)),
    ("sharding.dcn_tensor", "1", 1),
    ("sharding.rules", "(('batch', 'data'),)", (("batch", "data"),)),
    ("train.profile_first", "3", 3),
    ("evals.heldout_loss.num_batches", "2", None),
]


@pytest.mark.parametrize(("key", "text", "value"), OVERRIDES)
def test_the_overrides_the_issue_found_unreachable_now_take_effect(key, text, value):
    parsed = experiment.parse(_flags("demo", "contrastive", f"--config.{key}={text}"))
    if key.startswith("evals."):
        assert parsed.evals["heldout_loss"].options["num_batches"] == 2
        return
    assert _at(parsed, key.split(".")) == value


def test_the_front_end_is_selected_by_name_and_checked_against_the_model():
    log_mel = (
        "--config.data.pipeline.frontend=log_mel",
        "--config.data.pipeline.log_mel.n_mels=80",
    )
    parsed = experiment.parse(_flags("demo", "contrastive", *log_mel))
    assert parsed.data.pipeline.frontend_config == LogMelConfig(n_mels=80)
    with pytest.raises(ValueError, match=r"data.pipeline.log_mel.n_mels=64 differs from model"):
        experiment.parse(_flags("demo", "contrastive", log_mel[0]))
    hop = "--config.data.pipeline.log_mel.hop_length=320"
    with pytest.raises(ValueError, match=r"data.pipeline.log_mel hops 20 ms but model.audio"):
        experiment.parse(_flags("demo", "contrastive", *log_mel, hop))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--config.data.pipeline.mixup_prob=1.5", "mixup_prob"),
        ("--config.data.pipeline.frontend=mfcc", "data.pipeline.frontend"),
        ("--config.data.pipeline.feature_source=disk", "data.pipeline.feature_source"),
        ("--config.data.pipeline.bucket_frames=(900,)", "bucket_frames"),
        ("--config.data.pipeline.caption_style_weights.short=-1", "caption_style_weights.short"),
        ("--config.data.pipeline.mixture_weights={'demo': 'x'}", "mixture_weights.demo"),
        ("--config.sharding.rules=(('batch', 3),)", "sharding.rules"),
        ("--config.model.audio.frontend=bogus", "model.audio.frontend"),
        ("--config.data.pipeline.fbank.num_mel_bins=64", "num_mel_bins"),
        ("--config.evals.heldout_loss.every_steps=0", "evals.heldout_loss.every_steps"),
        ("--config.data.source=files", "data.source"),
    ],
)
def test_bad_values_fail_naming_the_key(override, message):
    config = _flags("demo", "contrastive", override)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        experiment.parse(config)


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("optimizer", "lr", "optimizer.lr"),
        ("checkpoint", "keep", "checkpoint.keep"),
        ("train", "steps", "train.steps"),
        ("objective", "smoothing", "objective.smoothing"),
        ("sharding", "ici_dta", "sharding.ici_dta"),
        ("data", "sorce", "data.sorce"),
    ],
)
def test_unknown_key_in_config_file_fails_naming_it(section, key, message):
    config = _with_tokenizer(_load("contrastive", "tiny"))
    with config.unlocked():
        config[section][key] = 1
    with pytest.raises(ValueError, match=message):
        experiment.parse(config)


def test_derived_keys_are_not_settable():
    config = _with_tokenizer(_load("contrastive", "tiny"))
    with config.unlocked():
        config.objective.objective = "captioning"
    with pytest.raises(ValueError, match=r"objective\.objective.*model\.objective"):
        experiment.parse(config)
    config = _with_tokenizer(_load("contrastive", "tiny"))
    with config.unlocked():
        config.objective.batch_axes = ("data",)
    with pytest.raises(ValueError, match=r"objective\.batch_axes.*sharding rules"):
        experiment.parse(config)


def test_the_loss_reads_its_batch_axes_from_the_sharding_rules():
    from audiolm_pt import sharding
    from audiolm_pt.train.build import build_from_config

    config = _load("demo", "contrastive")
    config.sharding.ici_fsdp = 2
    config.sharding.rules = tuple(
        (name, ("fsdp",) if name == sharding.BATCH else axes)
        for name, axes in sharding.DEFAULT_RULES
    )
    trainer = build_from_config(experiment.parse(config))
    assert trainer.objective.batch_axes == ("fsdp",)
    default = build_from_config(experiment.parse(_load("demo", "contrastive")))
    assert default.objective.batch_axes == ("data", "fsdp")


def test_unknown_model_key_fails_naming_it():
    config = _with_tokenizer(_load("contrastive", "tiny"))
    config.model.audio.widht = 3
    with pytest.raises(ValueError, match=r"model\.audio\.widht"):
        experiment.parse(config)


def test_text_objective_without_tokenizer_fails_at_start():
    with pytest.raises(ValueError, match=r"data\.pipeline\.tokenizer"):
        experiment.parse(_load("contrastive", "tiny"))


def test_an_evaluator_option_typo_fails_at_start(tmp_path):
    config = _load("demo", "contrastive")
    config.evals.heldout_loss.num_batchs = 2
    with pytest.raises(ValueError, match=r"evals\.heldout_loss\.num_batchs"):
        main.check_evals(experiment.parse(config))
    config = _load("demo", "contrastive")
    config.evals = {"retrieval": {"every_steps": 10, "topk": 3}}
    with pytest.raises(ValueError, match=r"evals\.retrieval.*topk"):
        main.check_evals(experiment.parse(config))


def test_the_run_file_round_trips(tmp_path):
    parsed = experiment.parse(_load("demo", "hybrid"))
    experiment.write(parsed, str(tmp_path))
    assert experiment.read(tmp_path) == parsed


def test_a_run_file_from_before_the_single_objective_name_still_reads(tmp_path):
    parsed = experiment.parse(_load("demo", "captioning"))
    values = experiment.as_dict(parsed)
    values["objective"]["objective"] = "captioning"
    (tmp_path / experiment.CONFIG_NAME).write_text(json.dumps(values))
    assert experiment.read(tmp_path) == parsed


def _main(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "audiolm_pt.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
            "PYTHONPATH": ROOT,
        },
    )


def test_dry_run_prints_the_resolved_config_and_mesh_and_touches_nothing(tmp_path):
    result = _main(
        f"--config={ROOT}/configs/demo.py:hybrid",
        "--dry_run",
        "--config.data.data_dir=/nonexistent",
        "--config.sharding.ici_fsdp=2",
        "--config.data.pipeline.mixup_prob=0.3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    body, _, mesh = result.stdout.rpartition("mesh: ")
    printed = json.loads(body)
    assert printed["data"]["pipeline"]["mixup_prob"] == 0.3
    assert printed["model"]["objective"] == "hybrid"
    assert mesh.startswith("{'data': 4, 'fsdp': 2, 'tensor': 1} over 8 devices")
    assert list(tmp_path.iterdir()) == []


def test_command_line_errors_name_the_key_and_write_nothing(tmp_path):
    for override, key, clean in [
        ("--config.optimizer.lrr=3e-4", "lrr", False),  # ml_collections' own KeyError
        ("--config.train.num_steps=abc", "config.train.num_steps", True),
        ("--config.data.pipeline.mixup_prob=2", "data.pipeline.mixup_prob", True),
    ]:
        result = _main("--config=configs/demo.py:contrastive", f"--workdir={tmp_path}", override)
        assert result.returncode != 0
        assert key in result.stderr
        assert clean == ("Traceback" not in result.stderr)
    assert list(tmp_path.iterdir()) == []


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
    assert not experiment.parse(fallback).model.text.init_from  # a valid random-init config


def test_sections_are_frozen():
    parsed = experiment.parse(_load("demo", "contrastive"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.train.num_steps = 3  # type: ignore[misc]


def test_only_the_train_split_is_read_by_worker_processes():
    data = DataConfig(pipeline=dataclasses.replace(DataConfig().pipeline, num_workers=2))
    assert data.pipeline_for("train") == dataclasses.replace(data.pipeline, train=True)
    held_out = data.pipeline_for("eval")
    assert (held_out.train, held_out.num_workers) == (False, 0)
    assert held_out == dataclasses.replace(data.pipeline, train=False, num_workers=0)
