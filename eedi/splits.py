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
from dataclasses import dataclass
from typing import Any, TypeVar

from eedi.data import DataError
from eedi.rows import attr

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
    fewest rows so far, so folds are balanced in rows, not just in groups.  More folds
    than groups is a DataError (some fold would be empty).
    """
    if by not in GROUP_KEYS:
        raise ValueError(f"group_folds: by must be one of {', '.join(GROUP_KEYS)}, got {by!r}")
    if k < 2:
        raise ValueError(f"group_folds: k must be at least 2, got {k}")
    sizes = Counter(attr(r, by) for r in rows)
    if any(g is None for g in sizes):
        raise ValueError(f"group_folds: a row has no {by}")
    if k > len(sizes):  # a fold without a group would validate on nothing
        raise DataError(f"--folds {k}: the {len(rows):,} real rows have only {len(sizes):,} distinct {by} "
                        f"values to split, so at most {len(sizes):,} folds")
    fold_rows = [0] * k
    fold_of: dict[Any, int] = {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], _order(seed, g))):
        target = min(range(k), key=lambda f: (fold_rows[f], f))
        fold_of[group] = target
        fold_rows[target] += sizes[group]
    return [fold_of[attr(r, by)] for r in rows]


@dataclass(frozen=True)
class FoldSpec:
    """One fold of a grouped k-fold split of the real rows: ``by`` (a column of GROUP_KEYS), k, seed, fold.

    Written as ``MisconceptionId:k=5:seed=0:fold=2``: the factory records it on every row it
    generated with that fold's rows hidden (``RealRowsHidden``), and the evaluation reads it
    back to decide which synthetic rows a fold may train on.
    """

    by: str = "MisconceptionId"
    k: int = 5
    seed: int = 0
    fold: int = 0

    def __post_init__(self) -> None:
        if self.by not in GROUP_KEYS:
            raise ValueError(f"fold: by must be one of {', '.join(GROUP_KEYS)}, got {self.by!r}")
        if self.k < 2:
            raise ValueError(f"fold: k must be at least 2, got {self.k}")
        if not 0 <= self.fold < self.k:
            raise ValueError(f"fold: fold must be in 0..{self.k - 1}, got {self.fold}")

    def __str__(self) -> str:
        return f"{self.by}:k={self.k}:seed={self.seed}:fold={self.fold}"

    @classmethod
    def parse(cls, text: str) -> "FoldSpec":
        """The inverse of ``str``; raises ValueError naming what is wrong."""
        by, *rest = text.split(":")
        try:
            values = dict(part.split("=", 1) for part in rest)
            return cls(by=by, k=int(values["k"]), seed=int(values["seed"]), fold=int(values["fold"]))
        except (KeyError, ValueError, TypeError) as e:
            if isinstance(e, ValueError) and str(e).startswith("fold:"):
                raise
            raise ValueError(f"fold spec {text!r}: expected BY:k=K:seed=S:fold=F, "
                             f"e.g. MisconceptionId:k=5:seed=0:fold=2") from None

    def split(self, rows: Sequence[R]) -> tuple[list[R], list[R]]:
        """(rows outside this fold, rows of this fold)."""
        folds = group_folds(rows, self.k, self.by, self.seed)
        return ([r for r, f in zip(rows, folds) if f != self.fold],
                [r for r, f in zip(rows, folds) if f == self.fold])
