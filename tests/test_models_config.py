"""Model configs: strict from_dict, presets, and logical axis names on every parameter."""

import numpy as np
import pytest
from flax import nnx

from audiolm_pt.models.config import OBJECTIVES, HeadConfig, ModelConfig, preset
from audiolm_pt.models.layers import LOGICAL_AXES
from audiolm_pt.models.model import AudioTextModel


def test_from_dict_round_trip():
    cfg = preset("small", "hybrid")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("d", "key"),
    [
        ({"objectiv": "siglip"}, "'objectiv'"),
        ({"audio": {"transformer": {"widht": 8}}}, "'audio.transformer.widht'"),
        ({"heads": {"joint_dim": 8, "temp": 1.0}}, "'heads.temp'"),
    ],
)
def test_from_dict_rejects_unknown_key_naming_it(d, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ModelConfig.from_dict(d)


@pytest.mark.parametrize(
    ("d", "key"),
    [
        ({"objective": "clip"}, "objective"),
        ({"audio": {"frontend": "wav"}}, "frontend"),
        ({"audio": {"transformer": {"remat": "some"}}}, "remat"),
        ({"audio": {"transformer": {"width": 10, "num_heads": 4}}}, "width"),
        ({"objective": "tagging"}, "num_labels"),
    ],
)
def test_from_dict_rejects_bad_values_naming_the_key(d, key):
    with pytest.raises(ValueError, match=key):
        ModelConfig.from_dict(d)


def test_preset_unknown_size():
    with pytest.raises(ValueError, match="size"):
        preset("huge")


def _params(cfg):
    model = nnx.eval_shape(lambda: AudioTextModel(cfg, rngs=nnx.Rngs(0)))
    return nnx.to_flat_state(nnx.state(model, nnx.Param))


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("frontend", ["conv", "patch"])
def test_every_param_has_logical_axis_names(objective, frontend):
    cfg = ModelConfig.from_dict(
        {
            "objective": objective,
            "audio": {"frontend": frontend, "transformer": {"scan_layers": True}},
            "heads": {"num_labels": 5, "audio_pooling": "attention", "learn_temperature": True},
        }
    )
    params = _params(cfg)
    assert params
    for path, var in params:
        names = var.get_metadata().get("out_sharding")
        where = "/".join(map(str, path))
        assert names is not None, where
        assert len(names) == len(var.get_value().shape), (where, names)
        assert all(n in LOGICAL_AXES for n in names), (where, names)
        if "layers" in path[:-1] and "blocks" in path:
            assert names[0] == "layers", (where, names)


def test_parts_follow_objective():
    names = {
        o: {p[0] for p, _ in _params(preset("tiny", o))} for o in ("contrastive", "captioning")
    }
    assert "text_encoder" in names["contrastive"]
    assert "decoder" not in names["contrastive"]
    assert "decoder" in names["captioning"]
    assert "text_encoder" not in names["captioning"]


def test_base_audio_encoder_is_study_sized():
    params = _params(preset("base"))
    n_audio = sum(int(np.prod(v.get_value().shape)) for p, v in params if p[0] == "audio_encoder")
    n_text = sum(int(np.prod(v.get_value().shape)) for p, v in params if p[0] == "text_encoder")
    # Zipformer-M: icefall's conv embed + encoder (see test_models_zipformer).
    assert n_audio == 611_953 + 63_382_150
    # BERT-base without its pooler: 109.48M - 0.59M.
    assert n_text == 108_891_648


def test_preset_overrides_apply_before_validation():
    heads = HeadConfig(joint_dim=64, num_labels=7)
    assert preset("tiny", "tagging", heads=heads).heads.num_labels == 7
    with pytest.raises(ValueError, match=r"heads\.num_labels"):
        preset("tiny", "tagging")
