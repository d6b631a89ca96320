"""The stage lists: what a run does, per mode, as data.

    question:   generate -> [checks] -> teach -> near-duplicate
    distractor: distract -> [checks] -> working | teach -> repeat

``CHECKS`` names every check a run may choose (``--checks``), each built from the config.  To add a
check: write one class with ``name``, ``role``, ``columns`` and ``run(items, ctx)`` (see
``factory.stage``), and add one entry here; its columns join the store schema, its counts the summary,
the version record and the dataset card, and its settings the items' ``ChecksKey``.
"""
from __future__ import annotations

from collections.abc import Callable

from factory.config import SynthConfig
from factory.world import ConfigError
from generators import DistractorWriter, QuestionGenerator, RationaleWriter
from generators.distractor import WorkingAsRationale
from judges import PickMisconception, RoundTrip, RubricJudge, Solver
from judges.rules import NearDuplicates, RepeatedDistractors

CHECKS: dict[str, Callable[[SynthConfig], object]] = {
    "solve": lambda c: Solver(),
    "pick": lambda c: PickMisconception(c.pick_k, c.pick_candidates, c.pick_min_probability),
    "round-trip": lambda c: RoundTrip(c.consistency_top_k, c.consistency_retriever),
    "judge": lambda c: RubricJudge(c.min_score),
}


def stages_for(config: SynthConfig) -> list:
    """The run's stages, in order."""
    unknown = [c for c in config.effective_checks() if c not in CHECKS]
    if unknown:
        raise ConfigError(f"--checks: unknown check {unknown[0]!r} (choose from {', '.join(CHECKS)})")
    checks = [CHECKS[name](config) for name in config.effective_checks()]
    if config.mode == "question":
        return [QuestionGenerator(), *checks, RationaleWriter(), NearDuplicates(config.near_duplicate_threshold)]
    rationale = RationaleWriter() if config.rationale == "teacher" else WorkingAsRationale()
    return [DistractorWriter(), *checks, rationale, RepeatedDistractors()]


def all_stage_columns() -> dict[str, str]:
    """Every column any stage may write, so every version of a store shares one schema."""
    config = SynthConfig(data_dir=None)  # type: ignore[arg-type]
    stages = [QuestionGenerator, DistractorWriter, RationaleWriter, WorkingAsRationale, NearDuplicates,
              RepeatedDistractors, *(type(build(config)) for build in CHECKS.values())]
    columns: dict[str, str] = {}
    for stage in stages:
        columns.update(stage.columns)
    return columns
