"""Ranking metrics over ranked misconception ids, one true misconception per query (as in Eedi).

``map_at_k`` is the competition's MAP@25: with a single relevant item the average
precision of a query is 1/rank when the truth is in the top k, else 0.
"""
from __future__ import annotations

from collections.abc import Sequence


def average_precision_at_k(ranked: Sequence[int], truth: int, k: int = 25) -> float:
    for rank, mid in enumerate(ranked[:k], start=1):
        if mid == truth:
            return 1.0 / rank
    return 0.0


def map_at_k(ranked_lists: Sequence[Sequence[int]], truths: Sequence[int], k: int = 25) -> float:
    if len(ranked_lists) != len(truths):
        raise ValueError("ranked_lists and truths differ in length")
    if not truths:
        return 0.0
    return sum(average_precision_at_k(r, t, k) for r, t in zip(ranked_lists, truths)) / len(truths)


def recall_at_k(ranked_lists: Sequence[Sequence[int]], truths: Sequence[int], k: int = 25) -> float:
    if len(ranked_lists) != len(truths):
        raise ValueError("ranked_lists and truths differ in length")
    if not truths:
        return 0.0
    return sum(t in r[:k] for r, t in zip(ranked_lists, truths)) / len(truths)


def ranking_metrics(ranked_lists: Sequence[Sequence[int]], truths: Sequence[int], k: int = 25) -> dict:
    return {f"map@{k}": round(map_at_k(ranked_lists, truths, k), 4),
            f"recall@{k}": round(recall_at_k(ranked_lists, truths, k), 4),
            "queries": len(truths)}
