"""A run's stage list: its mode's stages (``factory.modes``) around its checks (``factory.checks``); and the
columns every stage may write, so that every version of a store shares one schema."""
from __future__ import annotations

from factory.checks import BUILT_IN, CheckError, build_check
from factory.config import SynthConfig
from factory.modes import MODES
from factory.world import ConfigError
from generators.distractor import WRITERS


def stages_for(config: SynthConfig) -> list:
    """The run's stages, in order."""
    try:
        checks = [build_check(name, config.check_settings) for name in config.effective_checks()]
    except CheckError as e:
        raise ConfigError(f"--checks: {e}") from None
    mode = MODES[config.mode]
    why = next((w for w in map(mode.lacks, checks) if w), None)
    if why is not None:
        raise ConfigError(why)
    return mode.stages(config, checks)


def all_stage_columns() -> dict[str, str]:
    """Every column any stage may write, so every version of a store shares one schema."""
    config = SynthConfig(data_dir=None)  # type: ignore[arg-type]
    stages = [*(s for mode in MODES.values() for s in mode.stages(config, [])), *BUILT_IN, *WRITERS.values()]
    columns: dict[str, str] = {}
    for stage in stages:
        columns.update(stage.columns)
    return columns
