"""The configuration of a synthetic-data run: plain values, recorded in full in each version record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from embeddings import ClusterParams
from judges import NEAR_DUPLICATE_THRESHOLD
from llm import BackendOptions
from trainers.splits import FoldSpec

DEFAULT_MIN_SCORE = 7.0
DEFAULT_SHOTS = 5


@dataclass
class SynthConfig:
    data_dir: Path
    store: Path = Path("synth-store")
    clusters: list[int] | None = None  # None: every cluster with targets
    per_misconception: int = 1
    limit: int | None = None  # at most this many items in this run
    seed: int = 0
    generator_model: str | None = None  # None: the engine's default (the embedded preset, the server's model)
    judge_model: str | None = None
    teacher_model: str | None = None
    backend: BackendOptions = field(default_factory=BackendOptions)
    batch_size: int | None = None  # items per batch; default 4 per request in flight
    request_cache: bool = True  # replay answered requests (the resume mechanism)
    request_cache_file: Path | None = None  # default <store>/.cache/requests.sqlite
    shots: int = DEFAULT_SHOTS
    min_score: float = DEFAULT_MIN_SCORE
    min_real_rows: int = 1  # targets: misconceptions with fewer real rows than this
    # Evaluation runs: hide this fold's real rows (no shots, no near-duplicate references) and
    # target only its misconceptions, as if they had no rows (see pipelines.evaluate).
    hide_fold: FoldSpec | None = None
    max_attempts: int = 3  # LLM answers tried per step before the item is rejected
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD
    cluster: ClusterParams = field(default_factory=ClusterParams)
    flush_every: int = 25  # rows per parquet shard (the journal protects rows in between)
    progress: bool = True

    def effective_batch_size(self) -> int:
        return self.batch_size or 4 * self.backend.client().concurrency

    def request_cache_path(self) -> Path:
        return self.request_cache_file or self.store / ".cache" / "requests.sqlite"

    def as_record(self) -> dict:
        record = asdict(self)
        for key in ("data_dir", "store", "request_cache_file"):
            record[key] = str(record[key]) if record[key] is not None else None
        record["backend"] = self.backend.as_record()
        record["hide_fold"] = str(self.hide_fold) if self.hide_fold else None
        record.pop("progress")
        return record
