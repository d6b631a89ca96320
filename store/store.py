"""A dataset store: a folder laid out like a Hugging Face dataset repository.

    STORE/
      README.md                       dataset card; its YAML declares the splits
      data/train-<version>-<n>.parquet     kept rows
      data/rejected-<version>-<n>.parquet  rejects, with stage and reason
      versions/<version>.json         one record per run: config, models, prompts, counts
      .journal/<version>.jsonl        rows of a running version not yet in a shard
      .lock                           held by the run writing to the store

``datasets.load_dataset(STORE, split="train")`` reads every kept row of every
version.  Runs only ever add files: a shard, once renamed into ``data/``, is
never rewritten.

Crash safety: each finished row is appended to the version's journal and
fsynced before the next item starts, so a SIGKILL loses at most the item in
flight.  Every ``flush_every`` rows (and at the end) the journal becomes a
parquet shard: written to a temp file in ``data/``, renamed into place, then the
journal is emptied.  On the next open, a journal left by a killed run is
turned into shards, skipping rows whose QuestionId is already in a shard (the
kill may have fallen between the rename and the truncation), so no row is
ever written twice.
"""
from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from store.files import fsync_dir, open_atomic, write_atomic, write_json_atomic

SPLITS = ("train", "rejected")

# The base columns, shared by both splits; the factory adds its stages' columns (``schema_with``), the
# same set for every run, since `datasets` infers a config's features from its first shard.
BASE_FIELDS = [
    ("QuestionId", pa.string()),
    ("SubjectName", pa.string()),
    ("ConstructName", pa.string()),
    ("QuestionText", pa.string()),
    ("CorrectAnswerText", pa.string()),
    ("IncorrectAnswerText", pa.string()),
    ("OtherAnswerTexts", pa.list_(pa.string())),
    ("MisconceptionId", pa.int64()),
    ("MisconceptionName", pa.string()),
    ("ClusterId", pa.int64()),
    ("Rationale", pa.string()),
    ("Mode", pa.string()),  # factory.modes: "question" (a new question), "distractor" (a new wrong answer to a
    # real one), "pairing" (a real question labelled with the target, no wrong answer), ...
    ("BaseQuestionId", pa.string()),  # a mode with bases (distractor, pairing): the real question the row keeps
    ("GeneratorModel", pa.string()),
    ("SolverModel", pa.string()),
    ("JudgeModel", pa.string()),
    ("TeacherModel", pa.string()),
    ("PromptVersion", pa.string()),
    ("Version", pa.string()),
    ("Seed", pa.int64()),
    ("ItemIndex", pa.int64()),
    ("ItemKey", pa.string()),  # identifies what was generated; a re-run skips keys already stored ...
    ("ChecksKey", pa.string()),  # ... with the same check settings (stages, models, prompts, thresholds)
    ("Checks", pa.list_(pa.string())),  # the checks the row passed, in order
    ("ShotIds", pa.list_(pa.string())),  # real QuestionId_Answer pairs shown to the generator
    ("RealRowsHidden", pa.string()),  # "" or the fold (eedi.splits.FoldSpec) hidden from the whole run
    ("RejectStage", pa.string()),  # "" for kept rows; else the stage that rejected it
    ("RejectReason", pa.string()),
    ("RawOutput", pa.string()),  # the LLM's raw answer that was rejected
    ("Attempts", pa.int64()),
    ("CreatedAt", pa.string()),
]
TYPES = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_(),
         "list<string>": pa.list_(pa.string())}


def schema_with(columns: dict[str, str] | None = None) -> pa.Schema:
    """The base schema plus extra columns ``{name: type}`` (types: the keys of ``TYPES``)."""
    fields = list(BASE_FIELDS)
    names = {n for n, _ in fields}
    for name, kind in (columns or {}).items():
        if name not in names:
            fields.append((name, TYPES[kind]))
            names.add(name)
    return pa.schema(fields)


SCHEMA = schema_with()
CARDS_DIR = "cards"  # the misconception cards' shards (store.cards)


def card_shards(root: Path) -> list[Path]:
    return sorted((Path(root) / CARDS_DIR).glob("cards-*.parquet"))
COLUMNS = tuple(SCHEMA.names)


class StoreError(Exception):
    """The store cannot be used (locked by another run, unreadable, not a store). One line."""


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class DatasetStore:
    root: Path
    schema: pa.Schema = SCHEMA  # what new shards are written with
    _lock_fd: int | None = field(default=None, repr=False)

    # ---------- opening and locking ----------
    @classmethod
    def open(cls, root: Path, columns: dict[str, str] | None = None) -> "DatasetStore":
        """Open (creating if needed) and lock the store, then recover any killed run's journal.
        ``columns``: extra columns of the rows this run writes (``schema_with``)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root}: exists and is not a folder")
        if root.is_dir() and any(root.iterdir()) and not (root / "versions").is_dir():
            raise StoreError(f"{root}: not empty and not a dataset store (no versions/ folder)")
        for sub in ("data", "versions", ".journal"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        store = cls(root, schema_with(columns))
        store._lock()
        store._recover()
        return store

    def _lock(self) -> None:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.root}: in use by another run (lock {self.root / '.lock'})") from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---------- reading ----------
    def shard_files(self, split: str | None = None, version: str | None = None) -> list[Path]:
        pattern = f"{split or '*'}-{version or '*'}-*.parquet"
        return sorted((self.root / "data").glob(pattern))

    def read(self, split: str, columns: list[str] | None = None) -> pa.Table:
        """The rows of every shard of a split (``columns``: only those; None: every column of the store's
        schema and of any shard); a column a shard lacks (written before it existed) reads as null."""
        files = self.shard_files(split)
        types = {f.name: f.type for f in self.schema}  # a column a shard lacks reads as nulls of this type
        for shard in files:
            for f in _schema_of(shard):
                types.setdefault(f.name, f.type)
        wanted = columns or list(types)
        schema = pa.schema([(n, types.get(n, pa.string())) for n in wanted])
        tables = [read_shard(f, wanted, schema) for f in files]
        if not tables:
            return schema.empty_table()
        return pa.concat_tables(tables, promote_options="default")

    def stored_keys(self) -> tuple[set[tuple[str, str | None]], set[str]]:
        """((ItemKey, ChecksKey) pairs, QuestionIds) of every row in a shard, kept or rejected."""
        keys: set[tuple[str, str | None]] = set()
        qids: set[str] = set()
        for split in SPLITS:
            table = self.read(split, ["ItemKey", "ChecksKey", "QuestionId"])
            keys.update(zip(table.column("ItemKey").to_pylist(), table.column("ChecksKey").to_pylist()))
            qids.update(table.column("QuestionId").to_pylist())
        return keys, qids

    def versions(self) -> list[dict]:
        records = []
        for path in sorted((self.root / "versions").glob("v*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as e:
                raise StoreError(f"{path}: unreadable version record: {e}") from None
        return records

    # ---------- writing ----------
    def new_version(self, record: dict, flush_every: int = 25) -> "VersionWriter":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        version = f"v{stamp}-{os.urandom(2).hex()}"
        record = {**record, "id": version, "status": "running", "started": now_iso()}
        write_json_atomic(self.root / "versions" / f"{version}.json", record)
        return VersionWriter(self, version, record, flush_every)

    def _flush_rows(self, version: str, rows_by_split: dict[str, list[dict]], known_qids: set[str]) -> list[str]:
        """Write rows not yet stored as new shards of ``version``; returns the shard names."""
        written = []
        for split, rows in rows_by_split.items():
            fresh = [r for r in rows if r["QuestionId"] not in known_qids]
            if not fresh:
                continue
            n = len(self.shard_files(split, version)) + 1
            name = f"{split}-{version}-{n:05d}.parquet"
            table = pa.Table.from_pylist([{c: r.get(c) for c in self.schema.names} for r in fresh], schema=self.schema)
            with open_atomic(self.root / "data" / name, "wb") as f:
                pq.write_table(table, f)
            fsync_dir(self.root / "data")
            known_qids.update(r["QuestionId"] for r in fresh)
            written.append(name)
        return written

    def _recover(self) -> None:
        """Turn journals left by killed runs into shards and mark those versions interrupted."""
        journals = sorted((self.root / ".journal").glob("v*.jsonl"))
        if not journals:
            return
        _, qids = self.stored_keys()
        for journal in journals:
            version = journal.stem
            self._flush_rows(version, read_journal(journal), qids)
            journal.unlink()
            record_path = self.root / "versions" / f"{version}.json"
            if record_path.is_file():
                try:
                    record = json.loads(record_path.read_text())
                except (OSError, json.JSONDecodeError) as e:
                    raise StoreError(f"{record_path}: unreadable version record: {e}") from None
                if record.get("status") in ("running", "failed"):  # failed: a shard write failed mid-run
                    record.update(status="interrupted" if record["status"] == "running" else "failed",
                                  counts=self.count(version),
                                  shards=[p.name for p in self.shard_files(version=version)])
                    write_json_atomic(record_path, record)
        self.write_card()

    def count(self, version: str) -> dict:
        kept = sum(read_shard(f, ["QuestionId"]).num_rows for f in self.shard_files("train", version))
        reasons: Counter[str] = Counter()
        for f in self.shard_files("rejected", version):
            t = read_shard(f, ["RejectStage", "RejectReason"])
            for stage, reason in zip(t.column("RejectStage").to_pylist(), t.column("RejectReason").to_pylist()):
                reasons[reject_category(stage, reason)] += 1
        return {"kept": kept, "rejected": sum(reasons.values()), "rejected_by_reason": dict(reasons)}

    def write_card(self) -> None:
        from store.card import render_card

        shards = {s: [f"data/{p.name}" for p in self.shard_files(s)] for s in SPLITS}
        cards = [f"{CARDS_DIR}/{p.name}" for p in card_shards(self.root)]
        write_atomic(self.root / "README.md", render_card(shards, self.versions(), cards))


def reject_category(stage: str, reason: str) -> str:
    """A short, countable label for a reject: the stage plus the reason up to its first colon."""
    return f"{stage}: {reason.split(':')[0].strip()}"


def _schema_of(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise _damaged(path, e) from None


def _damaged(path: Path, e: BaseException) -> StoreError:
    version = path.stem.split("-", 1)[-1].rsplit("-", 1)[0]
    return StoreError(f"{path}: damaged parquet shard ({str(e).splitlines()[0][:120]}); move it out of data/ and "
                      f"re-run the synth command that made {version}: its items are remade, their answers replayed "
                      "from the request cache")


def read_shard(path: Path, columns: list[str], schema: pa.Schema = SCHEMA) -> pa.Table:
    """The given columns of one shard; a column it lacks reads as null. A damaged file is one line."""
    present = set(_schema_of(path).names)
    try:
        table = pq.read_table(path, columns=[c for c in columns if c in present])
    except (OSError, pa.ArrowException) as e:
        raise _damaged(path, e) from None
    for name in columns:
        if name not in present:
            kind = schema.field(name).type if name in schema.names else pa.string()
            table = table.append_column(pa.field(name, kind), pa.nulls(table.num_rows, kind))
    return table.select(columns)


def check_shard(path: Path) -> int:
    """Read and validate every column of a shard (what publishing it needs); returns its row count.
    A damaged file is a one-line StoreError, the same as when synth or train read it."""
    table = read_shard(path, _schema_of(path).names)
    try:
        table.validate(full=True)
    except pa.ArrowException as e:
        raise _damaged(path, e) from None
    return table.num_rows


def journal_entries(path: Path, what: str = "rows") -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of each line of a journal. Only the last line may be torn (a kill
    mid-write) and is skipped; a damaged line before it is an error naming the line (``what``: what the
    journal holds, for that message)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == last:
                continue
            raise StoreError(f"{path}: line {number + 1} is damaged (only a torn last line is expected); "
                             f"move the journal away to drop the {what} it holds") from None
        yield number + 1, entry


def read_journal(path: Path) -> dict[str, list[dict]]:
    """Rows of a journal by split (``journal_entries``)."""
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for number, entry in journal_entries(path):
        if not (isinstance(entry, dict) and entry.get("split") in rows and isinstance(entry.get("row"), dict)):
            raise StoreError(f"{path}: line {number} is not a journal entry")
        rows[entry["split"]].append(entry["row"])
    return rows


class VersionWriter:
    """Appends the rows of one run (one version) to the store."""

    def __init__(self, store: DatasetStore, version: str, record: dict, flush_every: int):
        self.store, self.version, self.record, self.flush_every = store, version, record, flush_every
        self.journal_path = store.root / ".journal" / f"{version}.jsonl"
        self._journal = open(self.journal_path, "a", encoding="utf-8")
        self._pending = 0
        _, self._qids = store.stored_keys()

    def append(self, split: str, row: dict) -> None:
        assert split in SPLITS, split
        if row["QuestionId"] in self._qids:
            raise StoreError(f"QuestionId {row['QuestionId']} is already in the store")
        self._qids.add(row["QuestionId"])
        self._journal.write(json.dumps({"split": split, "row": row}, ensure_ascii=False) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self._journal.close()
        try:
            # Rows in the journal were appended after its last truncation, so none is in a shard yet.
            self.store._flush_rows(self.version, read_journal(self.journal_path), set())
        except Exception as e:
            self._fail(e)
            raise
        self._journal = open(self.journal_path, "w", encoding="utf-8")  # empty it
        os.fsync(self._journal.fileno())
        self._pending = 0

    def _fail(self, error: Exception) -> None:
        """A shard write failed: the record says ``failed`` (not ``running``), with the error; the journal keeps
        the rows not yet in a shard, and the next open of the store turns them into shards."""
        if self.record.get("status") == "failed":
            return
        self.record.update(status="failed", finished=now_iso(),
                           error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                           shards=[p.name for p in self.store.shard_files(version=self.version)])
        try:
            self.record["counts"] = self.store.count(self.version)
        except (StoreError, OSError):
            pass
        try:
            write_json_atomic(self.store.root / "versions" / f"{self.version}.json", self.record)
        except OSError:
            pass  # the store is unwritable: the record stays "running" and the next open recovers it

    def finish(self, status: str = "complete", **extra) -> dict:
        if self.record.get("status") == "failed":  # a shard write failed: the journal is kept for recovery
            self.record.update(extra)
            write_json_atomic(self.store.root / "versions" / f"{self.version}.json", self.record)
            try:
                self.store.write_card()
            except (StoreError, OSError):
                pass
            return self.record
        self.flush()
        self._journal.close()
        self.journal_path.unlink(missing_ok=True)
        self.record.update(extra, status=status, finished=now_iso(), counts=self.store.count(self.version),
                           shards=[p.name for p in self.store.shard_files(version=self.version)])
        write_json_atomic(self.store.root / "versions" / f"{self.version}.json", self.record)
        self.store.write_card()
        return self.record
