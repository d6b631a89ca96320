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
