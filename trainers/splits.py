"""Grouped splits of real rows: the validation holdout and cross-validation folds.

Rows are grouped so that a group never straddles training and validation:

- by misconception (``MisconceptionId``): validation misconceptions are unseen in
  training, which is what the factory is for (retrieving misconceptions with no
  real rows);
- by construct (``ConstructId``, real rows only): validation questions test
  constructs unseen in training.

Everything is deterministic given the seed and independent of row order: groups are
ordered by ``sha256(f"{seed}:{group}")``.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

from trainers.texts import attr

R = TypeVar("R")
GROUP_KEYS = ("MisconceptionId", "ConstructId")


def _order(seed: int, group: Any) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def holdout_misconceptions(rows: Sequence[Any], fraction: float, seed: int = 0) -> set[int]:
    """``round(fraction * n)`` of the n misconceptions that have rows (at least one if fraction > 0)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    ids = sorted({int(attr(r, "MisconceptionId")) for r in rows})
    n = round(fraction * len(ids))
    if fraction > 0 and ids and n == 0:
        n = 1
    return set(sorted(ids, key=lambda m: _order(seed, m))[:n])


def grouped_holdout(rows: Sequence[R], fraction: float, seed: int = 0) -> tuple[list[R], list[R], set[int]]:
    """(training rows, validation rows, held-out misconception ids)."""
    held = holdout_misconceptions(rows, fraction, seed)
    train = [r for r in rows if int(attr(r, "MisconceptionId")) not in held]
    val = [r for r in rows if int(attr(r, "MisconceptionId")) in held]
    return train, val, held


def group_folds(rows: Sequence[Any], k: int, by: str = "MisconceptionId", seed: int = 0) -> list[int]:
    """The fold (0..k-1) of each row; all rows of a group share a fold.

    Groups go largest first (ties in seeded hash order) into the fold with the
    fewest rows so far, so folds are balanced in rows, not just in groups.
    """
    if by not in GROUP_KEYS:
        raise ValueError(f"group_folds: by must be one of {', '.join(GROUP_KEYS)}, got {by!r}")
    if k < 2:
        raise ValueError(f"group_folds: k must be at least 2, got {k}")
    sizes = Counter(attr(r, by) for r in rows)
    if any(g is None for g in sizes):
        raise ValueError(f"group_folds: a row has no {by}")
    fold_rows = [0] * k
    fold_of: dict[Any, int] = {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], _order(seed, g))):
        target = min(range(k), key=lambda f: (fold_rows[f], f))
        fold_of[group] = target
        fold_rows[target] += sizes[group]
    return [fold_of[attr(r, by)] for r in rows]
