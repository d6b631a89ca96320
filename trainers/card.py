"""Write the training card saved next to each trained model (``rankers.card`` reads it back).

``training_card.json`` is the machine-readable record (read back for lineage when a
later run resumes from this checkpoint, and by the loaders); ``README.md`` shows the same
facts to a person.
A card holds: what was trained from what (base model, parent checkpoint), the data
(real row counts, synthetic store versions and shards, the mixing rule), the
hyperparameters, validation metrics per epoch, and timings.
"""
from __future__ import annotations

from pathlib import Path

from rankers.card import CARD_FILE
from store.files import write_json_atomic


def write_card(folder: Path, card: dict, title: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / CARD_FILE, card)
    (folder / "README.md").write_text(render_markdown(card, title))


def _table(rows: dict) -> list[str]:
    lines = ["| | |", "|---|---|"]
    for key, value in rows.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "none"
        lines.append(f"| {key} | {value} |")
    return lines


def _documents(documents: dict) -> str:
    cards = documents.get("cards")
    if not cards:
        return "misconception names"
    return (f"names with {cards.get('cards')} misconception cards from {cards.get('store')} ("
            + ", ".join(f"{n} by {s}" for s, n in (cards.get("sources") or {}).items())
            + "); the cards are in misconception_cards.json")


def render_markdown(card: dict, title: str) -> str:
    data = card.get("data", {})
    synth = data.get("synthetic", {})
    lines = [f"# {title}", "", f"Trained by misconception-factory `pipelines.train` on {card.get('finished', '')}.",
             "The full record is in `training_card.json`.", "", "## Model", ""]
    lines += _table({"kind": card.get("kind"), "base": card.get("base", {}).get("name"),
                     "resumed from": (card.get("lineage") or {}).get("resumed_from") or "none (trained from the base)"})
    lines += ["", "## Data", ""]
    lines += _table({"real training rows": data.get("mix", {}).get("real"),
                     "synthetic rows used": data.get("mix", {}).get("synthetic_used"),
                     "synthetic store": synth.get("store") or "none (real rows only)",
                     "synthetic versions": synth.get("versions", []),
                     "only versions after": synth.get("since") or "-",
                     "shards": synth.get("shards", []),
                     "validation rows": data.get("validation", {}).get("rows"),
                     "held-out misconceptions": data.get("validation", {}).get("misconceptions"),
                     "retriever documents": _documents(card.get("documents") or {})})
    lines += ["", "## Hyperparameters", ""]
    lines += _table(card.get("hyperparameters", {}))
    history = card.get("validation", [])
    if history:
        keys = [k for k in history[0] if k not in ("epoch", "step")]
        lines += ["", "## Validation (real rows of held-out misconceptions)", "",
                  "| epoch | step | " + " | ".join(k.replace("map@", "MAP@") for k in keys) + " |",
                  "|---" * (len(keys) + 2) + "|"]
        lines += [f"| {h.get('epoch', '')} | {h.get('step', '')} | " + " | ".join(str(h.get(k)) for k in keys) + " |"
                  for h in history]
    timings = card.get("timings", {})
    if timings:
        lines += ["", "## Timings", ""] + _table(timings)
    return "\n".join(lines) + "\n"
