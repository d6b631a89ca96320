"""The stage lists: what a run does, as data: its mode's stages (``factory.modes``) around the chosen checks.

``CHECKS`` names every check a run may choose (``--checks``), each built from the config.  To add a
check: write one class with ``name``, ``role``, ``columns`` and ``run(items, ctx)`` (see
``factory.stage``), and add one entry here; its columns join the store schema, its counts the summary,
the version record and the dataset card, and its settings the items' ``ChecksKey``.
"""
from __future__ import annotations

from collections.abc import Callable

from factory.config import SynthConfig
from factory.world import ConfigError
from factory.modes import MODES
from judges import PickMisconception, RoundTrip, RubricJudge, Solver

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
    return MODES[config.mode].stages(config, checks)


def all_stage_columns() -> dict[str, str]:
    """Every column any stage may write, so every version of a store shares one schema."""
    config = SynthConfig(data_dir=None)  # type: ignore[arg-type]
    stages = [*(s for mode in MODES.values() for s in mode.stages(config, [])),
              *(build(config) for build in CHECKS.values())]
    columns: dict[str, str] = {}
    for stage in stages:
        columns.update(stage.columns)
    return columns
