"""The misconception cards of a store: one short text per misconception, its own config of the dataset repo.

    STORE/
      cards/cards-<run>-<n>.parquet   one row per (misconception, teacher model, prompt version)
      cards/runs/<run>.json           what each card run did: model, prompt version, counts, timings
      .journal/cards-<run>.jsonl      cards of a running card run not yet in a shard

The dataset card declares them as the config ``cards`` (``load_dataset(STORE, "cards", split="train")``).
A row whose ``RejectReason`` is not empty is a card the teacher failed to write (with its raw answer); readers
of cards (``read_cards``) skip it.  Crash safety is the store's: every card is journalled and fsynced as it is
made, the journal becomes a shard every ``flush_every`` cards and at the end, and a journal left by a killed
run becomes shards when the next card run starts (``recover_cards``), skipping keys already in a shard, so no
card is stored twice.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from store.files import fsync_dir, open_atomic, write_json_atomic
from store.store import CARDS_DIR, StoreError, card_shards, journal_entries, now_iso, read_shard

CARD_SCHEMA = pa.schema([
    ("MisconceptionId", pa.int64()),
    ("MisconceptionName", pa.string()),
    ("Card", pa.string()),  # "<explanation> Example: <worked wrong example>"; "" for a reject
    ("TeacherModel", pa.string()),
    ("PromptVersion", pa.string()),
    ("CardKey", pa.string()),  # MisconceptionId:TeacherModel:PromptVersion; a re-run skips keys stored
    ("Seed", pa.int64()),
    ("Attempts", pa.int64()),
    ("Run", pa.string()),
    ("RejectReason", pa.string()),  # "" for a kept card
    ("RawOutput", pa.string()),
    ("CreatedAt", pa.string()),
])


def card_key(misconception_id: int, model: str, prompt_version: str) -> str:
    return f"{misconception_id}:{model}:{prompt_version}"


def read_card_table(root: Path) -> pa.Table:
    """Every card row of the store, kept and rejected (an empty table if it holds none)."""
    tables = [read_shard(p, CARD_SCHEMA.names, CARD_SCHEMA) for p in card_shards(root)]
    return pa.concat_tables(tables) if tables else CARD_SCHEMA.empty_table()


def read_cards(root: Path, model: str | None = None) -> tuple[dict[int, str], dict]:
    """(MisconceptionId -> card text, a record of where they came from) of the store's kept cards.

    ``model``: only that teacher model's cards.  Where a misconception has several cards (other models or
    prompt versions), the newest is used.  The record (store, count, cards by model and prompt version) is
    what a training card keeps."""
    root = Path(root)
    if not (root / CARDS_DIR).is_dir():
        raise StoreError(f"{root}: no misconception cards (write them with python -m pipelines.synth "
                         f"--misconception-cards --store {root})")
    rows = read_card_table(root).to_pylist()
    chosen: dict[int, dict] = {}
    for row in sorted(rows, key=lambda r: r["CreatedAt"] or ""):
        if row["RejectReason"] or not row["Card"] or (model and row["TeacherModel"] != model):
            continue
        chosen[row["MisconceptionId"]] = row
    if not chosen:
        raise StoreError(f"{root}: no kept misconception card" + (f" by {model}" if model else ""))
    sources: dict[str, int] = {}
    for row in chosen.values():
        key = f"{row['TeacherModel']} (prompt {row['PromptVersion']})"
        sources[key] = sources.get(key, 0) + 1
    return {m: r["Card"] for m, r in chosen.items()}, {"store": str(root), "cards": len(chosen), "sources": sources}


def stored_card_keys(root: Path) -> set[str]:
    return set(read_card_table(root).column("CardKey").to_pylist())


def _write_shard(root: Path, run: str, rows: list[dict], known: set[str]) -> str | None:
    fresh = [r for r in rows if r["CardKey"] not in known]
    if not fresh:
        return None
    folder = root / CARDS_DIR
    n = len(list(folder.glob(f"cards-{run}-*.parquet"))) + 1
    name = f"cards-{run}-{n:05d}.parquet"
    table = pa.Table.from_pylist([{c: r.get(c) for c in CARD_SCHEMA.names} for r in fresh], schema=CARD_SCHEMA)
    with open_atomic(folder / name, "wb") as f:
        pq.write_table(table, f)
    fsync_dir(folder)
    known.update(r["CardKey"] for r in fresh)
    return name


def _journal_rows(path: Path) -> list[dict]:
    """A card journal's rows (``store.store.journal_entries``: only a torn last line is skipped)."""
    rows = []
    for number, row in journal_entries(path, "cards"):
        if not isinstance(row, dict) or "CardKey" not in row:
            raise StoreError(f"{path}: line {number} is not a card")
        rows.append(row)
    return rows


def recover_cards(root: Path) -> int:
    """Turn card journals left by killed runs into shards; returns the cards recovered."""
    root = Path(root)
    journals = sorted((root / ".journal").glob("cards-*.jsonl"))
    if not journals:
        return 0
    (root / CARDS_DIR).mkdir(exist_ok=True)
    known, recovered = stored_card_keys(root), 0
    for journal in journals:
        run = journal.stem.removeprefix("cards-")
        rows = _journal_rows(journal)
        before = len(known)
        _write_shard(root, run, rows, known)
        recovered += len(known) - before
        journal.unlink()
        path = root / CARDS_DIR / "runs" / f"{run}.json"
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("status") == "running":
                record["status"] = "interrupted"
                write_json_atomic(path, record)
    return recovered


class CardLog:
    """Appends the cards of one run to a store the caller holds open (``DatasetStore.open`` locks it) and has
    recovered (``recover_cards``: ``factory.cards.write_cards`` does it before it counts what is left to make)."""

    def __init__(self, root: Path, record: dict, flush_every: int = 100):
        self.root, self.flush_every = Path(root), flush_every
        (self.root / CARDS_DIR / "runs").mkdir(parents=True, exist_ok=True)
        self.run = f"c{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"
        self.record = {**record, "id": self.run, "status": "running", "started": now_iso()}
        self._write_record()
        self.journal_path = self.root / ".journal" / f"cards-{self.run}.jsonl"
        self._journal = open(self.journal_path, "a", encoding="utf-8")
        self._pending: list[dict] = []
        self.known = stored_card_keys(self.root)
        self.seen = set(self.known)  # stored or journalled by this run
        self.counts = {"kept": 0, "rejected": 0}

    def _write_record(self) -> None:
        write_json_atomic(self.root / CARDS_DIR / "runs" / f"{self.run}.json", self.record)

    def append(self, row: dict) -> None:
        if row["CardKey"] in self.seen:
            raise StoreError(f"card {row['CardKey']} is already in the store")
        self.seen.add(row["CardKey"])
        # microseconds: "the newest card" (read_cards) must be well defined between runs of the same second
        row = {**row, "Run": self.run, "CreatedAt": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
        self._journal.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._pending.append(row)
        self.counts["rejected" if row["RejectReason"] else "kept"] += 1
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        _write_shard(self.root, self.run, self._pending, self.known)
        self._journal.close()
        self._journal = open(self.journal_path, "w", encoding="utf-8")  # empty it: its cards are in a shard
        os.fsync(self._journal.fileno())
        self._pending = []

    def finish(self, status: str, **extra) -> dict:
        self.flush()
        self._journal.close()
        self.journal_path.unlink(missing_ok=True)
        self.record.update(extra, status=status, finished=now_iso(), counts=dict(self.counts),
                           shards=[p.name for p in card_shards(self.root) if f"-{self.run}-" in p.name])
        self._write_record()
        return self.record
