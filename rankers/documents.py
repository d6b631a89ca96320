"""The retriever's documents: each misconception's name, then its card where it has one.

A card (``generators.card``, kept in a store's ``cards`` config: ``store.cards``) is appended to the name in
training and at inference alike.  A retriever trained with cards keeps them in its folder
(``misconception_cards.json``, with where they came from), so inference ranks against the same text without
the store: ``folder_cards`` reads them back.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rankers import ModelError
from rankers.texts import doc_text

CARDS_FILE = "misconception_cards.json"


def documents(names: dict[int, str], cards: dict[int, str] | None = None) -> dict[int, str]:
    """MisconceptionId -> the document the retriever encodes (the name alone where there is no card)."""
    cards = cards or {}
    return {m: doc_text(name, cards.get(m, "")) for m, name in names.items()}


def cards_digest(cards: dict[int, str] | None) -> str:
    """A short hash of a card set ("" for none), for fingerprints and caches."""
    if not cards:
        return ""
    text = "\0".join(f"{m}:{cards[m]}" for m in sorted(cards))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_cards(folder: Path, cards: dict[int, str], source: dict) -> None:
    from store.files import write_json_atomic

    write_json_atomic(Path(folder) / CARDS_FILE, {"source": source, "digest": cards_digest(cards),
                                                  "cards": {str(m): t for m, t in sorted(cards.items())}})


def folder_cards(folder: str | Path | None) -> tuple[dict[int, str] | None, dict | None]:
    """(cards, their source) a retriever folder was trained with; (None, None) for a folder without cards."""
    if folder is None:
        return None, None
    path = Path(folder) / CARDS_FILE
    if not path.is_file():
        return None, None
    try:
        saved = json.loads(path.read_text())
        return {int(m): str(t) for m, t in saved["cards"].items()}, saved.get("source")
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"{path}: unreadable misconception cards ({type(e).__name__}: {e})") from None
