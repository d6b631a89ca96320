"""The configuration of a synthetic-data run: plain values, recorded in full in each version record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embeddings import ClusterParams
from generators.distractor import DEFAULT_WRITER
from judges import NEAR_DUPLICATE_THRESHOLD
from factory.modes import DEFAULT_MODE, KEYED_WITHOUT_MODE, MODES
from llm import BackendOptions
from eedi.splits import FoldSpec

DEFAULT_SHOTS = 5
# The modes, their default checks and items per target: factory.modes. Round-trip at top 100 keeps 77% of real
# labelled rows and 4% of rows given a random misconception; pick with the embedded models is at chance, so it
# is not a default (docs/results/2026-12-01-checks-on-real-rows.md).
DEFAULT_CHECKS = {name: list(m.checks) for name, m in MODES.items()}
RATIONALES = ("working", "teacher")
EXECUTORS = ("local", "ray")
DEFAULT_TASK_ITEMS = 8  # --executor ray: items per task (one cluster's items, consecutive in the plan)


@dataclass
class SynthConfig:
    data_dir: Path
    store: Path = Path("synth-store")
    clusters: list[int] | None = None  # None: every cluster with targets
    misconceptions: list[int] | None = None  # only these targets (--misconception, --misconceptions FILE)
    fill_gaps: bool = False  # only targets without a kept row in the store (same hide_fold): --fill-gaps
    mode: str = DEFAULT_MODE  # a name in factory.modes.MODES
    checks: list[str] | None = None  # None: the mode's default checks
    rationale: str = "working"  # distractor mode: the writer's working, or the teacher's rationale
    writer: str = DEFAULT_WRITER  # distractor mode: a name in generators.distractor.WRITERS
    answers: int = 1  # distractor mode: answers drawn an item; above 1 the pick judge chooses (judges.choose)
    per_misconception: int | None = None  # None: the mode's default
    limit: int | None = None  # at most this many items in this run
    seed: int = 0
    generator_model: str | None = None  # None: the engine's default (the embedded preset, the server's model)
    judge_model: str | None = None
    teacher_model: str | None = None
    solver_model: str | None = None  # None: the generator's
    backend: BackendOptions = field(default_factory=BackendOptions)
    batch_size: int | None = None  # items per batch; default 4 per request in flight
    request_cache: bool = True  # replay answered requests (the resume mechanism)
    request_cache_file: Path | None = None  # default <store>/.cache/requests.sqlite
    shots: int = DEFAULT_SHOTS
    # each check's options by check name, e.g. {"pick": {"k": 5}} (factory.checks; defaults for the rest)
    check_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    min_real_rows: int = 1  # targets: misconceptions with fewer real rows than this
    # Evaluation runs: hide this fold's real rows (no shots, no near-duplicate references) and
    # target only its misconceptions, as if they had no rows (see pipelines.evaluate).
    hide_fold: FoldSpec | None = None
    max_attempts: int = 3  # LLM answers tried per step before the item is rejected
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD
    cluster: ClusterParams = field(default_factory=ClusterParams)
    flush_every: int = 25  # rows per parquet shard (the journal protects rows in between)
    executor: str = "local"  # "local": this process; "ray": tasks on Ray workers (factory.ray_executor)
    ray_address: str | None = None  # None: a local Ray started for the run (or $RAY_ADDRESS)
    ray_workers: int | None = None  # None: as many as the cluster's resources allow (see ray_executor)
    task_items: int = DEFAULT_TASK_ITEMS
    progress: bool = True

    def key_tag(self) -> str:
        """What the ItemKey adds, so a run that makes other items never skips a stored one as its own: the mode
        (``mode=NAME``, for every mode but the first three, whose keys predate it), or a non-default distractor
        writer or answer count (``writer=NAME[+best-of-N]``); "" for the default."""
        if self.mode not in KEYED_WITHOUT_MODE:
            return f"mode={self.mode}"
        if self.mode != "distractor":
            return ""
        best_of = f"+best-of-{self.answers}" if self.answers > 1 else ""
        return f"writer={self.writer}{best_of}" if self.writer != DEFAULT_WRITER or best_of else ""

    def effective_checks(self) -> list[str]:
        return list(self.checks) if self.checks is not None else list(MODES[self.mode].checks)

    def effective_per_misconception(self) -> int:
        return self.per_misconception or MODES[self.mode].per_misconception

    def role_models(self) -> dict[str, str | None]:
        """The model spec of each LLM role (None: the engine's default)."""
        return {"generator": self.generator_model, "solver": self.solver_model or self.generator_model,
                "judge": self.judge_model, "teacher": self.teacher_model}

    def effective_batch_size(self) -> int:
        return self.batch_size or 4 * self.backend.client().concurrency

    def request_cache_path(self) -> Path:
        return self.request_cache_file or self.store / ".cache" / "requests.sqlite"

    def as_record(self) -> dict:
        record = asdict(self)
        for key in ("data_dir", "store", "request_cache_file"):
            record[key] = str(record[key]) if record[key] is not None else None
        record["check_settings"] = {c: {k: str(v) if isinstance(v, Path) else v for k, v in s.items()}
                                    for c, s in self.check_settings.items()}
        record["backend"] = self.backend.as_record()
        record["hide_fold"] = str(self.hide_fold) if self.hide_fold else None
        record.pop("progress")
        record["checks"] = self.effective_checks()
        record["per_misconception"] = self.effective_per_misconception()
        return record
