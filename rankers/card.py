"""Read the training card saved next to a trained model (``training_card.json``, written by ``trainers.card``).

A loader reads it to learn what the folder holds, e.g. the base model a reranker adapter goes on.
"""
from __future__ import annotations

import json
from pathlib import Path

from rankers import ModelError

CARD_FILE = "training_card.json"


def has_card(folder: str | Path) -> bool:
    return (Path(folder) / CARD_FILE).is_file()


def read_card(folder: str | Path) -> dict:
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ModelError(f"{path}: no training card (not a folder written by pipelines.train)")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable training card: {e}") from None
