"""The locked text tower's cache (LiT-style training): each caption's pooled tower output,
computed once, so the train step projects cached features instead of running the tower.

Entries are keyed by the caption's encoder tokens (BOS + ids + EOS, as the pipeline makes
them). A cache file under `cache_dir` is named by a hash of the tokenizer, the tower's
parameters and pooling, and the text length, so a cache is never read for another tokenizer or
tower. Captions met in training that were not precomputed (a mixup's joined captions, say) are
computed on first sight and counted in `misses`.

The tower runs on the host's first local device from a host copy of its parameters, so
processes never wait on each other for a cache miss.
"""

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from audiolm_pt.data import transforms
from audiolm_pt.objectives import TEXT_FEATURES
from audiolm_pt.text import Tokenizer
from audiolm_pt.train.build import Trainer

log = logging.getLogger(__name__)
TEXT_KEYS = ("text_tokens", "text_mask")
BATCH_ROWS = 64
LENGTH_STEP = 8


def _key(tokens: np.ndarray, mask: np.ndarray) -> bytes:
    return np.asarray(tokens, np.int32)[np.asarray(mask, bool)].tobytes()


def _host(tree: Any) -> Any:
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def tower_hash(text_params: Any, text_cfg: Any, max_text_len: int) -> str:
    """Hash of the tower's parameters (in path order), its config and the text length."""
    digest = hashlib.sha256(f"{text_cfg}|{max_text_len}".encode())
    for path, leaf in sorted(
        jax.tree_util.tree_leaves_with_path(text_params), key=lambda kv: jax.tree_util.keystr(kv[0])
    ):
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


class TextCache:
    """Pooled tower outputs by caption tokens; `__call__` turns a batch's caption tokens into
    `text_features`."""

    def __init__(self, encode: Callable[[np.ndarray, np.ndarray], np.ndarray]):
        self._encode = encode
        self._index: dict[bytes, int] = {}
        self._rows: list[np.ndarray] = []
        self.misses = 0

    def __len__(self) -> int:
        return len(self._index)

    def add(self, tokens: np.ndarray, mask: np.ndarray) -> int:
        """Computes the rows of [n, L] `tokens` not yet cached; returns how many were new."""
        new: dict[bytes, int] = {}
        for i in range(len(tokens)):
            key = _key(tokens[i], mask[i])
            if key not in self._index and key not in new:
                new[key] = i
        rows = np.fromiter(new.values(), np.int64, len(new))
        # Shortest first, each chunk cut to its longest caption rounded up to LENGTH_STEP:
        # few compiled shapes, little padding (outputs do not depend on padding).
        lengths = mask[rows].sum(axis=1)
        rows = rows[np.argsort(lengths, kind="stable")]
        for start in range(0, len(rows), BATCH_ROWS):
            chunk = rows[start : start + BATCH_ROWS]
            pad = BATCH_ROWS - len(chunk)
            longest = int(mask[chunk].sum(axis=1).max())
            width = min(-(-longest // LENGTH_STEP) * LENGTH_STEP, tokens.shape[1])
            t = np.pad(tokens[chunk, :width], ((0, pad), (0, 0)))
            m = np.pad(mask[chunk, :width], ((0, pad), (0, 0)))
            features = np.asarray(self._encode(t, m))[: len(chunk)]
            for i, row in zip(chunk, features, strict=True):
                self._index[_key(tokens[i], mask[i])] = len(self._rows)
                self._rows.append(row)
        return len(new)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tokens, mask = batch["text_tokens"], batch["text_mask"]
        self.misses += self.add(tokens, mask)
        rows = [self._index[_key(tokens[i], mask[i])] for i in range(len(tokens))]
        out = {k: v for k, v in batch.items() if k not in TEXT_KEYS}
        out[TEXT_FEATURES] = np.stack([self._rows[r] for r in rows])
        return out

    def save(self, path: str) -> None:
        keys = np.array(list(self._index), dtype=object)
        np.savez(path, keys=keys, features=np.stack(self._rows))

    def load(self, path: str) -> None:
        with np.load(path, allow_pickle=True) as f:
            for key, row in zip(f["keys"], f["features"], strict=True):
                self._index[bytes(key)] = len(self._rows)
                self._rows.append(row)


def encoder_tokens(
    captions: Iterable[str], tokenizer: Tokenizer, max_text_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder tokens and masks [n, L] of `captions`, exactly as the pipeline makes them."""
    arrays = [
        transforms.caption_arrays(
            ids, max_text_len, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id
        )
        for ids in tokenizer.encode_batch(list(captions))
        if ids
    ]
    if not arrays:
        return np.zeros((0, max_text_len), np.int32), np.zeros((0, max_text_len), bool)
    return np.stack([a["text_tokens"] for a in arrays]), np.stack([a["text_mask"] for a in arrays])


def build(
    trainer: Trainer,
    state: Mapping[str, Any],
    tokenizer: Tokenizer,
    captions: Iterable[str],
    max_text_len: int,
    cache_dir: str,
) -> TextCache:
    """The cache of `captions` for the locked tower in `state`: what `cache_dir` holds for
    this tokenizer and tower, plus the captions it lacks (computed, and the file rewritten)."""
    params, rest = _host(state["params"]), _host(state["rest"])
    tower = tower_hash(params["text_encoder"], trainer.model_cfg.text, max_text_len)
    name = hashlib.sha256((tokenizer.fingerprint + tower).encode()).hexdigest()[:24]
    path = os.path.join(cache_dir, f"text_cache_{name}.npz")
    params, rest = jax.device_put((params, rest), jax.local_devices()[0])
    graphdef = trainer.graphdef

    @jax.jit
    def encode(p, r, tokens, mask):
        return nnx.merge(graphdef, p, r).text_features(tokens, mask)

    cache = TextCache(lambda t, m: encode(params, rest, t, m))
    if os.path.exists(path):
        cache.load(path)
        log.info("text cache: %d captions read from %s", len(cache), path)
    start = time.perf_counter()
    tokens, mask = encoder_tokens(captions, tokenizer, max_text_len)
    added = cache.add(tokens, mask)
    log.info(
        "text cache: %d of %d captions (%d distinct) computed by the locked tower in %.1f s",
        added,
        len(tokens),
        len(cache),
        time.perf_counter() - start,
    )
    if added and jax.process_index() == 0:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        cache.save(tmp)
        os.replace(tmp, path)
    return cache
