"""Training examples: real pairs plus the synthetic rows of chosen dataset-store versions.

Choosing versions (``--versions``, ``--since``) is ``store.versions.choose_versions``:
``latest`` (the newest version that has kept rows), ``all``, or ``ID,ID,...``; versions
still ``running`` are never read.  The store is read without taking its lock, so training
can run while the factory adds a version.  A shard that pyarrow cannot read is a one-line
error naming the file.

The mixing rule (``mix``):

1. every real training row (the validation holdout removed) is used once;
2. synthetic rows of held-out misconceptions are dropped, so validation misconceptions
   stay unseen (a synthetic row may even copy a validation question shown as a shot);
3. at most ``per_misconception`` synthetic rows per misconception, best ``JudgeScore``
   first (ties by QuestionId);
4. at most ``ratio`` x (real rows) synthetic rows in all, taken round-robin over
   misconceptions (every misconception's best row before any second row), so a cap
   keeps coverage rather than depth;
5. each chosen synthetic row is used ``repeat`` times per epoch (oversampling: a handful
   of rows among thousands of real ones otherwise moves the model little).  ``None`` (auto):
   as many times as keeps all synthetic uses within ``ratio`` x (real rows) (1 x when the
   ratio is unlimited), at most ``AUTO_MAX_REPEAT``.  Batches never hold one misconception
   twice, so copies never meet as each other's negatives.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from eedi import Pair
from store import DatasetStore, StoreError
from store.versions import choose_versions, version_records
from trainers import TrainError

SYNTH_COLUMNS = ("QuestionId", "SubjectName", "ConstructName", "QuestionText", "CorrectAnswerText",
                 "IncorrectAnswerText", "MisconceptionId", "Rationale", "JudgeScore", "Version")
# IncorrectAnswerText may be empty: a pairing row (the LLM-free control) or a store row's answerless twin
# (evaluation.control) claims no wrong answer, and its query leaves the line out (rankers.texts.query_text).
REQUIRED_TEXT = ("QuestionText", "CorrectAnswerText")
# provenance the evaluation's leak rule reads; shards written before a column existed read as its default
OPTIONAL_COLUMNS = {"ShotIds": [], "RealRowsHidden": "", "ClusterId": None, "ItemKey": None, "BaseQuestionId": None,
                    "Mode": None}


@dataclass(frozen=True)
class Example:
    key: str  # Pair.key for real rows, QuestionId for synthetic ones
    source: str  # "real" or the synthetic row's version id
    misconception_id: int
    row: Any  # the Pair or the store row (dict); see rankers.texts


@dataclass
class SyntheticSelection:
    """What was read from a store: which versions and shards, and their kept rows."""

    store: Path | None = None
    spec: str | None = None
    since: str | None = None
    versions: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    skipped_running: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"store": str(self.store) if self.store else None, "versions_spec": self.spec,
                "since": self.since, "versions": self.versions, "shards": self.shards,
                "rows": len(self.rows), "skipped_running": self.skipped_running}


def store_versions(store: Path) -> list[dict]:
    """The version records of a store, oldest first, read without locking it."""
    try:
        return version_records(store)
    except StoreError as e:
        raise TrainError(str(e)) from None


def _unreadable(shard: Path, error: Exception, version: str) -> TrainError:
    """A shard the system cannot read (permissions ...), or one pyarrow cannot parse (damaged)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, OSError) and error.errno is not None:
        return TrainError(f"{shard}: cannot read parquet: {reason}")
    return TrainError(f"{shard}: damaged parquet shard ({reason}); move it out of data/ and re-run synth with "
                      f"version {version}'s settings (versions/{version}.json) to make its items again")


def read_synthetic(store: Path, spec: str = "latest", since: str | None = None) -> SyntheticSelection:
    """The kept rows of the chosen versions, with the shard files they came from."""
    store = Path(store)
    try:
        choice = choose_versions(store_versions(store), spec, since, where=store)
    except StoreError as e:
        raise TrainError(str(e)) from None
    selection = SyntheticSelection(store=store, spec=spec, since=since, skipped_running=choice.skipped_running)
    reader = DatasetStore(store)
    for record in choice.records:
        selection.versions.append(record["id"])
        for shard in reader.shard_files("train", record["id"]):
            try:
                schema = pq.read_schema(shard)
                missing = [c for c in SYNTH_COLUMNS if c not in schema.names]
                if missing:
                    raise TrainError(f"{shard}: missing column {', '.join(missing)}")
                optional = [c for c in OPTIONAL_COLUMNS if c in schema.names]
                rows = pq.read_table(shard, columns=[*SYNTH_COLUMNS, *optional]).to_pylist()
            except (OSError, pa.ArrowException) as e:
                raise _unreadable(shard, e, record["id"]) from None
            for i, row in enumerate(rows, start=1):
                for column, default in OPTIONAL_COLUMNS.items():
                    row.setdefault(column, default)
                row["_shard"] = f"data/{shard.name}:{i}"
            selection.shards.append(f"data/{shard.name}")
            selection.rows.extend(rows)
    selection.rows = newest_per_item(selection.rows)
    return selection


def newest_per_item(rows: list[dict]) -> list[dict]:
    """One row per generated item: an item judged again under other check settings (``synth`` re-runs) is
    kept in each version that passed it; only its newest version's row is used."""
    newest: dict[str, dict] = {}
    for row in rows:
        key = row.get("ItemKey")
        if key and (key not in newest or str(row.get("Version")) > str(newest[key].get("Version"))):
            newest[key] = row
    return [r for r in rows if not r.get("ItemKey") or newest[r["ItemKey"]] is r]


def real_examples(pairs: list[Pair]) -> list[Example]:
    return [Example(p.key, "real", int(p.MisconceptionId), p) for p in pairs if p.MisconceptionId is not None]


def synthetic_examples(rows: list[dict], misconceptions: dict[int, str]) -> list[Example]:
    out = []
    for row in rows:
        where = row.get("_shard", row.get("QuestionId"))
        mid = row.get("MisconceptionId")
        if mid is None or int(mid) not in misconceptions:
            raise TrainError(f"{where}: MisconceptionId {mid} is not in misconception_mapping.csv")
        for name in REQUIRED_TEXT:
            if not str(row.get(name) or "").strip():
                raise TrainError(f"{where}: {name} is empty")
        out.append(Example(str(row["QuestionId"]), str(row.get("Version") or "synthetic"), int(mid), row))
    return out


# Auto oversampling's ceiling: on one fold (docs/results/2026-11-22-first-folds-mixing-and-boost.md), 16 rows
# used 16 times raised their misconceptions' pairs by +0.03 MAP@25 where 1 and 4 times did nothing measurable.
AUTO_MAX_REPEAT = 16


@dataclass(frozen=True)
class MixRule:
    per_misconception: int = 4  # synthetic rows per misconception at most
    ratio: float = 1.0  # synthetic rows per real training row at most (math.inf: no limit)
    seed: int = 0
    repeat: int | None = None  # times each chosen synthetic row is used per epoch; None: auto

    def record(self) -> dict:
        return {"synth_per_misconception": self.per_misconception,
                "synth_ratio": None if math.isinf(self.ratio) else self.ratio,
                "synth_repeat": self.repeat or "auto", "seed": self.seed}

    def repeats(self, real: int, synthetic: int) -> int:
        """Uses per epoch of each chosen synthetic row (rule 5)."""
        if self.repeat:
            return self.repeat
        budget = real * (1.0 if math.isinf(self.ratio) else self.ratio)
        return max(1, min(AUTO_MAX_REPEAT, int(budget // synthetic))) if synthetic else 1


def mix(real: list[Example], synthetic: list[Example], rule: MixRule,
        held_out: set[int] = frozenset()) -> tuple[list[Example], dict]:
    """Apply the mixing rule (module docstring); returns the examples and the counts at each step."""
    pool = [e for e in synthetic if e.misconception_id not in held_out]
    groups: dict[int, list[Example]] = {}
    for e in pool:
        groups.setdefault(e.misconception_id, []).append(e)
    for mid, rows in groups.items():
        rows.sort(key=lambda e: (-float(e.row.get("JudgeScore") or 0.0), e.key))
        del rows[rule.per_misconception:]
    order = sorted(groups, key=lambda m: hashlib.sha256(f"{rule.seed}:{m}".encode()).hexdigest())
    capped = sum(len(v) for v in groups.values())
    limit = capped if math.isinf(rule.ratio) else min(capped, int(rule.ratio * len(real)))
    chosen: list[Example] = []
    depth = 0
    while len(chosen) < limit:
        for mid in order:
            if depth < len(groups[mid]) and len(chosen) < limit:
                chosen.append(groups[mid][depth])
        depth += 1
    repeat = rule.repeats(len(real), len(chosen))
    stats = {"real": len(real), "synthetic_read": len(synthetic),
             "synthetic_dropped_held_out": len(synthetic) - len(pool),
             "synthetic_after_cap": capped, "synthetic_used": len(chosen),
             "synthetic_misconceptions": len({e.misconception_id for e in chosen}),
             "synthetic_repeat": repeat, "total": len(real) + len(chosen) * repeat}
    return real + chosen * repeat, stats
