"""Deterministic train/valid/test partition of every generator pool (sentences, melodies, samples).

Pools are split so that no sentence, melody or source sample is shared between splits; mixtures
draw from their own split's pools only.
"""

import hashlib

import numpy as np

SPLITS = ("train", "valid", "test")


def stable_unit(key: str) -> float:
    """Maps a string to [0, 1) with a hash that is stable across processes and Python versions."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of_key(key: str, fractions: tuple[float, float, float]) -> str:
    """The split a pool item belongs to, by hashing its key against cumulative split fractions."""
    u = stable_unit(key)
    bounds = np.cumsum(fractions)
    for split, bound in zip(SPLITS, bounds, strict=True):
        if u < bound:
            return split
    return SPLITS[-1]


def partition_by_category(names: list[str], category_of, held_out: float = 0.1) -> dict[str, str]:
    """Assigns each name a split, holding out items per category.

    A category with at least 3 items gives valid and test max(1, round(held_out * n)) items each
    and keeps the rest in train, so every held-out category also appears in train. Smaller
    categories stay entirely in train. The order within a category is a stable hash, not the
    alphabet, so held-out items are not simply the last names.
    """
    by_category: dict[str, list[str]] = {}
    for name in sorted(names):
        by_category.setdefault(category_of(name), []).append(name)
    assignment = {}
    for members in by_category.values():
        members = sorted(members, key=lambda name: stable_unit("sample:" + name))
        n_held = max(1, round(held_out * len(members))) if len(members) >= 3 else 0
        for i, name in enumerate(members):
            if i < n_held:
                assignment[name] = "test"
            elif i < 2 * n_held:
                assignment[name] = "valid"
            else:
                assignment[name] = "train"
    return assignment


def melody_id(rng: np.random.Generator, split: str) -> int:
    """Draws a melody id from the split's own residue class, so splits never share a melody."""
    return 3 * int(rng.integers(0, 10**6)) + SPLITS.index(split)


def split_of_melody(melody: int) -> str:
    return SPLITS[melody % 3]
