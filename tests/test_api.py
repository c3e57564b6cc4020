"""Inference API: outputs do not depend on batching, long audio goes through windows, bad
inputs fail naming the item (or are handled), zero-shot and captions, the HEAR API's shapes
and timestamps (on a fresh in-memory model); and, marked slow, the round trip from a
checkpoint the trainer wrote (the loaded model reproduces the trained state's embeddings),
the embed CLI's per-file errors and HEAR's `load_model`."""

import importlib
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from flax import nnx

import audiolm_pt
from audiolm_pt import embed, experiment, hear, main
from audiolm_pt.api import AudioModel
from audiolm_pt.audio import AudioError, fbank_np
from audiolm_pt.data import transforms
from audiolm_pt.inference.run import Run
from audiolm_pt.models.config import preset
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.text import load_tokenizer
from audiolm_pt.train import step as step_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "audiolm_pt", "assets", "demo_tokenizer.model")
MAX_FRAMES = 200  # 2 s windows
RATE = 16000


@pytest.fixture(scope="module", params=["hybrid", "hybrid,zipformer"])
def trained(request, tmp_path_factory):
    """A hybrid (contrastive + captioning) demo model, with the demo's transformer or
    Zipformer audio encoder, trained 2 steps on synthetic batches."""
    workdir = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(ROOT)
        config = importlib.import_module("configs.demo").get_config(request.param)
    config.data.source = "synthetic"
    config.data.pipeline.global_batch_size = 8
    config.data.pipeline.max_frames = MAX_FRAMES
    config.data.pipeline.max_text_len = 12
    config.model.audio.max_frames = MAX_FRAMES
    config.train.num_steps = 2
    config.optimizer.warmup_steps = 1
    config.train.log_every = 1
    config.checkpoint.every_steps = 2
    config.checkpoint.async_save = False
    config.evals = {}
    state = main.run(experiment.parse(config), str(workdir))
    return str(workdir), state


@pytest.fixture(scope="module")
def run():
    return tiny_run()


def tiny_run(**audio) -> Run:
    """A freshly initialised tiny hybrid model with the demo tokenizer, in memory; `audio`
    changes its audio encoder's config."""
    tokenizer = load_tokenizer(TOKENIZER)
    values = preset("tiny", "hybrid").to_dict()
    values["audio"].update(max_frames=MAX_FRAMES, **audio)
    pipeline = {"max_text_len": 12, "max_frames": MAX_FRAMES, "tokenizer": TOKENIZER}
    pipeline["min_frames"] = 9 if audio.get("encoder") == "zipformer" else 1
    config = experiment.parse({"model": values, "data": {"pipeline": pipeline}})
    return Run("", config, AudioTextModel(config.model, rngs=nnx.Rngs(0)), tokenizer, step=-1)


@pytest.fixture(scope="module")
def model(run):
    return AudioModel(run, batch_size=4)


def _waves(n, seconds=1.3, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32) for _ in range(n)]


@pytest.mark.slow
def test_loaded_model_reproduces_the_trained_state(trained):
    model = audiolm_pt.load(trained[0], batch_size=4)
    state = trained[1]
    assert model.run.step == 2
    graphdef, _, _ = step_lib.abstract_model(model.run.model_cfg)
    reference = nnx.merge(graphdef, jax.device_get(state["params"]), state["rest"])
    wave = _waves(1)[0]
    feats, mask = transforms.pad(fbank_np(wave), MAX_FRAMES)
    frames, frame_mask = reference.encode_audio(feats[None], mask[None])
    expected = np.asarray(reference.audio_embedding(frames, frame_mask))[0]
    np.testing.assert_allclose(model.embed_audio(wave), expected[None], atol=1e-5)
    tok = model.run.tokenizer
    ids = tok.encode("a dog barks")
    arrays = transforms.caption_arrays(ids, 12, tok.pad_id, tok.bos_id, tok.eos_id)
    text = reference.text_embedding(arrays["text_tokens"][None], arrays["text_mask"][None])
    np.testing.assert_allclose(model.embed_text(["a dog barks"]), np.asarray(text), atol=1e-5)


def test_outputs_do_not_depend_on_batching(run, model):
    waves = _waves(5, seed=1)
    together = model.embed_audio(waves)
    apart = np.concatenate([model.embed_audio(waves[:1]), model.embed_audio(waves[1:])])
    np.testing.assert_array_equal(together, apart)
    other = AudioModel(run, batch_size=1)
    np.testing.assert_allclose(other.embed_audio(waves), together, atol=1e-6)
    texts = ["a dog barks", "rain", "a man speaks"]
    np.testing.assert_array_equal(model.embed_text(texts)[1:], model.embed_text(texts[1:]))


def test_long_audio_is_windowed(model):
    wave = _waves(1, seconds=4.5, seed=2)[0]  # 448 frames: windows of 200, 200, 48
    frames, times = model.frame_embeddings(wave)[0]
    assert len(frames) == len(times) == 50 + 50 + 12
    hop = np.diff(times)
    np.testing.assert_allclose(hop, 0.04, atol=1e-6)
    feats = fbank_np(wave)
    parts = [feats[:200], feats[200:400], feats[400:]]
    embs = [model.embed_features([p])[0] for p in parts]
    weights = np.array([200, 200, 48], float) / 448
    expected = sum(w * e for w, e in zip(weights, embs, strict=True))
    np.testing.assert_allclose(
        model.embed_audio(wave)[0], expected / np.linalg.norm(expected), atol=1e-5
    )


def test_stage_statistics_pool_every_stage_over_all_windows(run, model):
    """Each stage's mean and std over a windowed clip's valid tokens, against the encoder's
    hidden states of each window pooled here in float64."""
    feats = fbank_np(_waves(1, seconds=4.5, seed=4)[0])  # windows of 200, 200, 48 frames
    encoded = model._inference.encode([feats])[0]
    tokens = []
    for start in range(0, len(feats), MAX_FRAMES):
        window, mask = transforms.pad(feats[start : start + MAX_FRAMES], MAX_FRAMES)
        states, state_mask = run.model.audio_encoder.hidden_states(window[None], mask[None])
        tokens.append(np.asarray(states, np.float64)[:, 0][:, np.asarray(state_mask[0])])
    tokens = np.concatenate(tokens, axis=1)  # [depth + 1, valid tokens, D]
    expected = np.concatenate([tokens.mean(axis=1), tokens.std(axis=1)], axis=1)
    assert encoded.stage_stats.shape == (run.model.cfg.audio.transformer.depth + 1, 2 * 64)
    np.testing.assert_allclose(encoded.stage_stats, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(encoded.stage_stats[-1, :64], encoded.pooled, atol=1e-5)


def test_bad_inputs_name_the_item_or_are_handled(tmp_path, model):
    wave = _waves(1, seed=3)[0]
    with pytest.raises(AudioError, match=r"missing\.wav: missing_file"):
        model.embed_audio([str(tmp_path / "missing.wav")])
    with pytest.raises(AudioError, match="item 1: empty"):
        model.embed_audio([wave, np.zeros(0, np.float32)])
    with pytest.raises(AudioError, match="item 0: non_finite"):
        model.embed_audio([np.full(RATE, np.nan, np.float32)])
    with pytest.raises(AudioError, match="shorter than one frame"):
        model.embed_audio([wave[:100]])
    stereo = np.stack([wave, 0.5 * wave])
    np.testing.assert_allclose(
        model.embed_audio([stereo]), model.embed_audio([0.75 * wave]), atol=1e-6
    )
    at_8k = soxr.resample(wave, RATE, 8000)
    np.testing.assert_allclose(
        model.embed_audio([at_8k], sample_rate=8000),
        model.embed_audio([soxr.resample(at_8k, 8000, RATE, quality="HQ")]),
        atol=1e-6,
    )


@pytest.mark.slow
def test_embed_cli_keeps_good_files_and_reports_bad_ones(tmp_path, trained):
    model = audiolm_pt.load(trained[0])
    waves = _waves(2, seed=4)
    paths = []
    for i, w in enumerate(waves):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], w, RATE)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join([paths[0], str(tmp_path / "bad.wav"), paths[1]]) + "\n")
    out = str(tmp_path / "emb.npy")
    status = embed.main([f"--workdir={trained[0]}", f"--input={listing}", f"--output={out}"])
    assert status == 1
    emb = np.load(out)
    assert np.isnan(emb[1]).all()
    np.testing.assert_allclose(emb[[0, 2]], model.embed_audio(paths), atol=1e-6)
    errors = json.loads((tmp_path / "emb.npy.errors.json").read_text())
    assert list(errors) == [str(tmp_path / "bad.wav")]
    assert "undecodable" in errors[str(tmp_path / "bad.wav")]


def test_zero_shot_and_captions(model):
    waves = _waves(3, seed=5)
    probs = model.zero_shot(waves, ["dog", "rain", "speech"])
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    audio = model.embed_audio(waves)
    classes = model.embed_text(["dog", "rain", "speech"])  # one template: same ranking
    one = model.zero_shot(waves, ["dog", "rain", "speech"], templates=("{}",))
    np.testing.assert_array_equal(np.argmax(one, 1), np.argmax(audio @ classes.T, 1))
    greedy = model.caption(waves, beam=1)
    assert len(greedy) == 3
    assert all(isinstance(c, str) for c in greedy)
    assert len(model.caption(waves, beam=3)) == 3


def test_hear_api(model):
    m = hear.HearModel(model)
    assert isinstance(m, torch.nn.Module)
    assert m.sample_rate == RATE
    audio = np.stack(_waves(3, seconds=2.5, seed=6))
    scene = hear.get_scene_embeddings(torch.from_numpy(audio), m)
    assert scene.dtype == torch.float32
    assert scene.shape == (3, m.scene_embedding_size)
    np.testing.assert_array_equal(scene.numpy(), model.embed_audio(audio, RATE))
    np.testing.assert_array_equal(m(torch.from_numpy(audio)).numpy(), scene.numpy())
    emb, ms = hear.get_timestamp_embeddings(torch.from_numpy(audio), m)
    assert emb.dtype == ms.dtype == torch.float32
    assert emb.shape == (3, ms.shape[1], m.timestamp_embedding_size)
    ms = ms.numpy()
    assert ms.shape[0] == 3
    np.testing.assert_allclose(np.diff(ms, axis=1), 40.0, atol=1e-3)  # a regular 40 ms hop
    np.testing.assert_allclose(ms[:, 0], 20.0)  # first token centred 20 ms in
    assert ms[0, -1] <= 2500.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(RATE, np.float32), "n_sounds, n_samples"),
        (np.zeros((2, RATE), np.int16), "float"),
        (torch.zeros((2, RATE), dtype=torch.int16), "float"),
        (np.full((1, RATE), np.nan, np.float32), "NaN"),
        (np.zeros((2, 0), np.float32), "n_sounds, n_samples"),
    ],
)
def test_hear_refuses_bad_batches_saying_why(model, bad, message):
    with pytest.raises(ValueError, match=message):
        hear.get_scene_embeddings(bad, hear.HearModel(model))


@pytest.mark.slow
def test_hear_loads_a_trained_run(trained):
    m = hear.load_model(trained[0])
    assert m.scene_embedding_size == m.model.run.model_cfg.heads.joint_dim
    scene = hear.get_scene_embeddings(np.stack(_waves(2)), m)
    assert scene.shape == (2, m.scene_embedding_size)


# Three stacks at factors 1, 4 and 2, one layer each: a Zipformer small enough to compile fast.
ZIPFORMER = {
    "encoder": "zipformer",
    "transformer": {"width": 32, "num_heads": 4},
    "zipformer": {
        "num_layers": (1, 1, 1),
        "dims": (16, 32, 24),
        "ff_dims": (32, 64, 48),
        "heads": (2, 4, 2),
        "kernels": (5, 3, 3),
        "downsampling": (1, 4, 2),
        "query_head_dim": 8,
        "value_head_dim": 4,
        "embed_channels": (4, 8, 16),
    },
}


@pytest.mark.slow  # ~35 s: trains a Zipformer
def test_a_zipformer_run_windows_long_audio_times_its_frames_and_loops_short_clips(caplog):
    """Windows of 200 frames each lose the embed's context at their ends: every window's
    tokens sit at the encoder's 25 Hz token times plus the window's start. A clip shorter than
    the embed's 9 frames is looped up to them, with a warning."""
    model = AudioModel(tiny_run(**ZIPFORMER), batch_size=4)
    encoder = model.run.model.audio_encoder
    wave = _waves(1, seconds=4.5, seed=2)[0]  # 448 frames: windows of 200, 200, 48
    frames, times = model.frame_embeddings(wave)[0]
    per_window = [encoder.token_times(n)[: -(-((n - 7) // 2) // 2)] for n in (200, 200, 48)]
    expected = np.concatenate([t + 2.0 * w for w, t in enumerate(per_window)])
    assert len(frames) == 48 + 48 + 10
    assert model._inference.encode([fbank_np(wave)])[0].stage_stats is None
    np.testing.assert_allclose(times, expected, atol=1e-6)
    np.testing.assert_allclose(times[:3], [0.045, 0.085, 0.125], atol=1e-6)
    scene = hear.get_scene_embeddings(np.stack(_waves(2, seconds=2.5)), hear.HearModel(model))
    assert np.isfinite(scene.numpy()).all()
    short = fbank_np(_waves(1, seed=4)[0])[:5]
    with caplog.at_level("WARNING"):
        got = model.embed_features([short])
    assert "shorter than the audio encoder's 9-frame receptive field" in caplog.text
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, model.embed_features([np.tile(short, (2, 1))[:9]]))


@pytest.mark.slow  # with its trained fixture about 45 s; test_hear_api runs by default
def test_hear_validator_passes_on_a_trained_run(trained):
    """hear-validator (PyPI hearvalidator) loads `audiolm_pt.hear` as hear-eval-kit does."""
    pytest.importorskip("hearvalidator", reason="installed by launch/setup_env.sh (reference)")
    result = subprocess.run(
        [sys.executable, "-m", "hearvalidator.validate", "audiolm_pt.hear", "-m", trained[0],
         "-d", "cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Received torch Module" in result.stdout
    assert "Interval between timestamps is 40.0" in result.stdout
    assert result.stdout.rstrip().endswith("Looks good!")
