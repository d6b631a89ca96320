"""A run's stage list: its mode's stages (``factory.modes``) around its checks (``factory.checks``); and the
columns every stage may write, so that every version of a store shares one schema."""
from __future__ import annotations

from factory.checks import BUILT_IN, CheckError, build_check
from factory.config import SynthConfig
from factory.modes import MODES
from factory.world import ConfigError


def stages_for(config: SynthConfig) -> list:
    """The run's stages, in order."""
    try:
        checks = [build_check(name, config.check_settings) for name in config.effective_checks()]
    except CheckError as e:
        raise ConfigError(f"--checks: {e}") from None
    wrong = next((c for c in checks if c.modes and config.mode not in c.modes), None)
    if wrong is not None:
        raise ConfigError(f"--checks {wrong.name} is for --mode {' or '.join(wrong.modes)} ({wrong.modes_why})")
    return MODES[config.mode].stages(config, checks)


def all_stage_columns() -> dict[str, str]:
    """Every column any stage may write, so every version of a store shares one schema."""
    config = SynthConfig(data_dir=None)  # type: ignore[arg-type]
    stages = [*(s for mode in MODES.values() for s in mode.stages(config, [])), *BUILT_IN]
    columns: dict[str, str] = {}
    for stage in stages:
        columns.update(stage.columns)
    return columns
