"""A *row*: an :class:`eedi.Pair` (a real pair) or a dict read from the dataset store (a synthetic row).

Both carry the same field names (``MisconceptionId``, ``ConstructId``, ``QuestionText`` ...);
``attr`` reads one from either.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def attr(row: Any, name: str) -> Any:
    """A field of a Pair or a store row (None when missing)."""
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)
