"""argparse value types shared by the command-line interfaces (a bad value is a one-line usage error, exit 2)."""
from __future__ import annotations

import argparse


def positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def count(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


FOLD_BY = {"misconception": "MisconceptionId", "construct": "ConstructId"}
DEFAULT_FOLDS = 5


def add_fold_args(group) -> None:
    """--folds / --fold-by / --fold-seed: the grouped k-fold split shared by synth --hide-fold and evaluate."""
    group.add_argument("--folds", type=positive, default=DEFAULT_FOLDS, metavar="K",
                       help=f"folds of the grouped cross-validation split of the real rows (default {DEFAULT_FOLDS})")
    group.add_argument("--fold-by", choices=sorted(FOLD_BY), default="misconception",
                       help="group the folds by misconception (each fold's misconceptions are unseen in the "
                            "other folds) or by construct (default misconception)")
    group.add_argument("--fold-seed", type=int, default=0, metavar="S", help="seed of the fold assignment (default 0)")
