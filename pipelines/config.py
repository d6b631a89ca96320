"""The configuration of a synthetic-data run: plain values, recorded in full in each version record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from embeddings import ClusterParams
from judges import NEAR_DUPLICATE_THRESHOLD
from llm import DEFAULT_PRESET

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
    generator_model: str = DEFAULT_PRESET
    judge_model: str = DEFAULT_PRESET
    teacher_model: str = DEFAULT_PRESET
    shots: int = DEFAULT_SHOTS
    min_score: float = DEFAULT_MIN_SCORE
    min_real_rows: int = 1  # targets: misconceptions with fewer real rows than this
    max_attempts: int = 3  # LLM answers tried per step before the item is rejected
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD
    cluster: ClusterParams = field(default_factory=ClusterParams)
    n_ctx: int = 4096
    flush_every: int = 25  # rows per parquet shard (the journal protects rows in between)
    progress: bool = True

    def as_record(self) -> dict:
        record = asdict(self)
        record["data_dir"] = str(self.data_dir)
        record["store"] = str(self.store)
        record.pop("progress")
        return record
