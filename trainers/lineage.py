"""Lineage: what a run resumed from a parent (``--resume-from DIR``, a previous run's folder) inherits and
must match.

- the holdout: the parent's fraction and seed (a different one would validate on misconceptions the
  parent trained on);
- the store versions: only those made after the newest one the parent and its ancestors used
  (``versions_seen`` in the card, accumulated over the chain);
- the models: the retriever starts from ``DIR/retriever``, the reranker from ``DIR/reranker``, whose
  adapter must have the same base and the same kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainers import TrainError
from trainers.data import store_versions

DEFAULT_HOLDOUT = 0.15  # fraction of the misconceptions with real rows held out for validation
DEFAULT_SEED = 0


@dataclass
class Lineage:
    folder: Path | None = None  # the parent run; None: trained from the base models
    card: dict | None = None  # the parent's retriever card

    @classmethod
    def read(cls, folder: Path | None) -> Lineage:
        if folder is None:
            return cls()
        from rankers.card import read_card

        if not folder.is_dir():
            raise TrainError(f"--resume-from {folder}: folder not found")
        return cls(folder, read_card(folder / "retriever"))

    @property
    def versions_seen(self) -> list[str]:
        return self.card.get("lineage", {}).get("versions_seen", []) if self.card else []

    def holdout(self, fraction: float | None, seed: int | None) -> tuple[float, int]:
        """(fraction, seed) of the holdout: the parent's (asking for another is a TrainError), else the
        ones asked for, else the defaults."""
        if self.card is not None:
            pv = self.card["data"]["validation"]
            for name, mine, theirs in (("--holdout", fraction, pv["fraction"]), ("--seed", seed, pv["seed"])):
                if mine is not None and mine != theirs:
                    raise TrainError(f"{name} {mine}: {self.folder} was validated with {name} {theirs}; a "
                                     "different holdout would validate on misconceptions it trained on")
            fraction, seed = pv["fraction"], pv["seed"]
        return (DEFAULT_HOLDOUT if fraction is None else fraction), (DEFAULT_SEED if seed is None else seed)

    def since(self, asked: str | None, store: Path) -> str | None:
        """``asked`` (--since), or the newest store version the parent (and its ancestors) used, which
        ``store`` must hold."""
        if asked or self.card is None or not self.versions_seen:
            return asked
        newest = max(self.versions_seen)
        if newest not in {r.get("id") for r in store_versions(store)}:
            raise TrainError(f"{self.folder} was trained on version {newest}, which is not in {store}: "
                             "choose the versions with --since VERSION or --versions")
        return newest

    def retriever_base(self, asked: str | None) -> str | None:
        """The parent's retriever, else the base asked for (None: the embedded one)."""
        return str(self.folder / "retriever") if self.folder else asked

    def reranker_adapter(self, base: str, scoring: str) -> Path | None:
        """The parent's reranker adapter to continue, if it has one; its base and kind must be ours."""
        adapter = self.folder / "reranker" if self.folder else None
        if adapter is None or not (adapter / "adapter_config.json").is_file():
            return None
        from rankers.card import read_card
        from rankers.reranker import resolve_base

        card = read_card(adapter)
        if card.get("scoring", "pointwise") != scoring:
            raise TrainError(f"--reranker-kind {scoring}: the adapter in {adapter} is a "
                             f"{card.get('scoring', 'pointwise')} reranker; resume with the same kind")
        theirs = card["base"]
        mine = resolve_base(base)
        if (theirs.get("sha256"), theirs.get("name")) != (mine.sha256, mine.name):
            raise TrainError(f"--reranker-base {base}: the adapter in {adapter} was trained on {theirs.get('name')}; "
                             "resume with the same base")
        return adapter

    def record(self, versions: list[str]) -> dict:
        """The card's ``lineage``: the parent, its versions, and every version seen over the chain."""
        return {"resumed_from": str(self.folder) if self.folder else None,
                "parent_versions": self.card["data"]["synthetic"]["versions"] if self.card else [],
                "versions_seen": sorted(set(self.versions_seen) | set(versions)),
                "parent_lineage": self.card.get("lineage") if self.card else None}
