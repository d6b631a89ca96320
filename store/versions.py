"""Choosing versions of a dataset store, the same way for every command that reads or pushes them.

A spec is one of:

- ``latest``: the newest usable version (with ``latest_needs_rows``: the newest that has kept rows);
- ``all``: every usable version;
- ``ID,ID,...``: those versions, in the order given (each once).

*Usable*: not ``running`` (a run writing now, or killed and not yet recovered).  ``since=V``
keeps only versions made after V (version ids start with their UTC start time, so id order is
time order).  Records are read without the store's lock, so a reader can run while the factory
adds a version.  Every mistake is a :class:`StoreError` with a one-line message naming the flag.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from store.store import DatasetStore, StoreError

SHOWN_IDS = 10  # an unknown id's message lists at most this many of the newest ids


@dataclass
class Choice:
    """The chosen version records (oldest first) and the ids passed over because they are still running."""

    records: list[dict] = field(default_factory=list)
    skipped_running: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]


def version_records(root: str | Path) -> list[dict]:
    """The version records of the store at ``root``, oldest first, read without locking it."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: store folder not found")
    if not (root / "versions").is_dir():
        raise StoreError(f"{root}: not a dataset store (no versions/ folder)")
    return DatasetStore(root).versions()


def is_running(record: dict) -> bool:
    return record.get("status") == "running"


def _listing(ids: list[str]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(ids[-SHOWN_IDS:])
    return shown if len(ids) <= SHOWN_IDS else f"{len(ids)}, newest {shown}"


def choose_versions(records: list[dict], spec: str = "latest", since: str | None = None, *, where: str | Path,
                    flag: str = "--versions", latest_needs_rows: bool = True) -> Choice:
    """The versions ``spec`` names among ``records`` (oldest first); ``where`` names the store in messages."""
    ids = [r.get("id") for r in records]
    if since is not None:
        if since not in ids:
            raise StoreError(f"--since {since}: no such version in {where} (versions: {_listing(ids)})")
        records = records[ids.index(since) + 1:]
        ids = ids[ids.index(since) + 1:]
    running = [r["id"] for r in records if is_running(r)]
    usable = [r for r in records if not is_running(r)]
    spec = spec.strip()
    if spec == "all":
        return Choice(usable, running)
    if spec == "latest":
        if latest_needs_rows:
            usable = [r for r in usable if (r.get("counts") or {}).get("kept", 0) > 0]
        return Choice(usable[-1:], running)
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    if not wanted:
        raise StoreError(f"{flag}: expected latest, all or version ids separated by commas")
    by_id = dict(zip(ids, records))
    for v in wanted:
        if v not in by_id:
            after = f"after {since} " if since else ""
            raise StoreError(f"{flag} {v}: no such version {after}in {where} (versions: {_listing(ids)})")
        if is_running(by_id[v]):
            raise StoreError(f"{flag} {v}: version is still running (or was killed: open the store to recover it)")
    return Choice([by_id[v] for v in dict.fromkeys(wanted)], running)
