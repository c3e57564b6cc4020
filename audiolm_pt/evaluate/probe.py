"""Linear probes on frozen features, the study's protocol: a logistic-regression classifier on
standardised pooled features with C chosen on the validation split (accuracy for single-label
tasks, macro mAP for multi-label ones), and a trained attention-pooling probe (learned
multi-head attention pool + linear head, JAX/optax) on frame features, its training step
chosen on the validation split. Test figures are reported at the chosen setting."""

import dataclasses
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiolm_pt.evaluate import metrics

C_GRID = (0.01, 0.1, 1.0, 10.0)


@dataclasses.dataclass(frozen=True)
class ProbeData:
    """One split of a task: inputs (pooled [n, D] or a list of frame arrays [N_i, D]) and
    multi-hot targets [n, C]."""

    inputs: np.ndarray | Sequence[np.ndarray]
    targets: np.ndarray


def score(scores: np.ndarray, targets: np.ndarray, multi_label: bool) -> float:
    if multi_label:
        return metrics.mean_average_precision(scores, targets)
    return metrics.accuracy(scores, np.argmax(targets, axis=1))


def _classifier(c: float, multi_label: bool):
    logistic = LogisticRegression(C=c, max_iter=2000)
    return make_pipeline(
        StandardScaler(), OneVsRestClassifier(logistic) if multi_label else logistic
    )


def _scores(classifier, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Class scores [n, C] over all task classes (classes absent in training score -inf)."""
    proba = classifier.predict_proba(x)
    out = np.full((len(x), num_classes), -np.inf)
    out[:, classifier.classes_] = proba
    return out


def linear_probe(
    train: ProbeData,
    valid: ProbeData,
    test: ProbeData,
    multi_label: bool,
    c_grid: Sequence[float] = C_GRID,
) -> dict[str, float]:
    """{'test', 'valid', 'C'}: logistic regression with C picked on `valid`."""
    num_classes = train.targets.shape[1]
    x_train = np.asarray(train.inputs, np.float64)
    y_train = train.targets if multi_label else np.argmax(train.targets, axis=1)
    if not multi_label and len(np.unique(y_train)) < 2:
        raise ValueError("the training split has fewer than two classes")
    best = None
    for c in c_grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier = _classifier(c, multi_label).fit(x_train, y_train)
        valid_score = score(
            _scores(classifier, valid.inputs, num_classes), valid.targets, multi_label
        )
        if best is None or valid_score > best[0]:
            best = (valid_score, c, classifier)
    valid_score, c, classifier = best
    test_score = score(_scores(classifier, test.inputs, num_classes), test.targets, multi_label)
    return {"test": test_score, "valid": valid_score, "C": c}


def _pad_frames(frame_list: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    dim = frame_list[0].shape[1]
    out = np.zeros((len(frame_list), length, dim), np.float32)
    mask = np.zeros((len(frame_list), length), bool)
    for i, f in enumerate(frame_list):
        out[i, : len(f)] = f[:length]
        mask[i, : len(f)] = True
    return out, mask


def _attention_logits(params, frames, mask):
    """Per-head softmax weights over valid frames, pooled frames concatenated over heads."""
    att = jnp.einsum("bnd,dh->bnh", frames, params["query"]) + params["query_bias"]
    att = jnp.where(mask[..., None], att, -1e30)
    weights = jax.nn.softmax(att, axis=1)
    pooled = jnp.einsum("bnh,bnd->bhd", weights, frames).reshape(frames.shape[0], -1)
    return pooled @ params["head"] + params["head_bias"]


def attention_probe(
    train: ProbeData,
    valid: ProbeData,
    test: ProbeData,
    multi_label: bool,
    *,
    num_heads: int = 4,
    steps: int = 300,
    eval_every: int = 25,
    batch_size: int = 128,
    learning_rates: tuple[float, ...] = (1e-3, 3e-3),
    weight_decays: tuple[float, ...] = (1e-4, 1e-2),
    seed: int = 0,
) -> dict[str, float]:
    """{'test', 'valid', 'step', 'learning_rate', 'weight_decay'}: attention pool + linear head
    on standardised frame features, trained with AdamW for each (learning rate, weight decay)
    of the grid; the grid point and evaluated step with the best validation figure win."""
    length = max(len(f) for split in (train, valid, test) for f in split.inputs)
    x_tr, m_tr = _pad_frames(train.inputs, length)
    train_frames = np.concatenate(list(train.inputs))
    mean, std = train_frames.mean(axis=0), train_frames.std(axis=0) + 1e-6
    norm = lambda x, m: np.where(m[..., None], (x - mean) / std, 0.0).astype(np.float32)  # noqa: E731
    x_tr = norm(x_tr, m_tr)
    x_va, m_va = _pad_frames(valid.inputs, length)
    x_te, m_te = _pad_frames(test.inputs, length)
    x_va, x_te = norm(x_va, m_va), norm(x_te, m_te)
    dim, num_classes = x_tr.shape[-1], train.targets.shape[1]

    def fit(learning_rate: float, weight_decay: float):
        """(best valid score, its step, its params) of one grid point."""
        return _fit_attention(
            (x_tr, m_tr, train.targets),
            (x_va, m_va, valid.targets),
            (dim, num_classes, num_heads),
            multi_label,
            optax.adamw(learning_rate, weight_decay=weight_decay),
            steps=steps,
            eval_every=eval_every,
            batch_size=batch_size,
            seed=seed,
        )

    results = {(lr, wd): fit(lr, wd) for lr in learning_rates for wd in weight_decays}
    (lr, wd), (valid_score, step, params) = max(results.items(), key=lambda kv: kv[1][0])
    test_score = score(np.asarray(_predict(params, x_te, m_te)), test.targets, multi_label)
    return {
        "test": test_score,
        "valid": valid_score,
        "step": step,
        "learning_rate": lr,
        "weight_decay": wd,
    }


_predict = jax.jit(lambda p, x, m: _attention_logits(p, x, m))


def _fit_attention(train, valid, shape, multi_label, tx, *, steps, eval_every, batch_size, seed):
    (x_tr, m_tr, y_tr), (x_va, m_va, y_va) = train, valid
    dim, num_classes, num_heads = shape
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    params = {
        "query": 0.02 * jax.random.normal(k1, (dim, num_heads)),
        "query_bias": jnp.zeros((num_heads,)),
        "head": jax.random.normal(k2, (num_heads * dim, num_classes)) / np.sqrt(num_heads * dim),
        "head_bias": jnp.zeros((num_classes,)),
    }
    opt_state = tx.init(params)

    def loss_fn(p, x, m, y):
        logits = _attention_logits(p, x, m)
        if multi_label:
            return optax.sigmoid_binary_cross_entropy(logits, y).mean()
        return optax.softmax_cross_entropy(logits, y / y.sum(-1, keepdims=True)).mean()

    @jax.jit
    def update(p, s, x, m, y):
        grads = jax.grad(loss_fn)(p, x, m, y)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    rng = np.random.default_rng(seed)
    batch = min(batch_size, len(x_tr))
    best = None
    for step in range(1, steps + 1):
        idx = rng.choice(len(x_tr), batch, replace=False)
        params, opt_state = update(params, opt_state, x_tr[idx], m_tr[idx], y_tr[idx])
        if step % eval_every == 0 or step == steps:
            valid_score = score(np.asarray(_predict(params, x_va, m_va)), y_va, multi_label)
            if best is None or valid_score > best[0]:
                best = (valid_score, step, params)
    return best
