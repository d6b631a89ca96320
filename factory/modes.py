"""The factory's modes: what an item is, how targets are planned, which stages run, and the defaults.

A mode is one ``Mode`` value in ``MODES``; ``pipelines.synth --mode`` offers them all, its help and the
defaults come from here, and ``stages_for`` builds a run's stage list from the mode's stages around the
chosen checks (``factory.checks``). To add a mode: write its stages (``generators/``), add one ``Mode``
below (docs/extending.md).

    question:   generate -> [checks] -> teach -> near-duplicate
    distractor: distract -> [checks] -> working | teach -> repeat
    pairing:    pair -> [checks]                                (no LLM: the control every lift is measured against)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from generators import DistractorWriter, QuestionGenerator, RationaleWriter
from generators.distractor import WorkingAsRationale
from generators.pairing import PairRealQuestion
from judges.rules import NearDuplicates, RepeatedDistractors

if TYPE_CHECKING:
    from factory.config import SynthConfig


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str  # one line for --help
    checks: tuple[str, ...]  # the checks run by default, in order
    per_misconception: int  # items per target by default
    bases: bool  # each item keeps a real base question (factory.plan.BasePicker): its k-th item the k-th base
    wrong_answer: bool  # its rows carry a wrong answer (checks solve, pick and judge read one)
    before: Callable[["SynthConfig"], list]  # the stages before the checks
    after: Callable[["SynthConfig"], list]  # the stages after them

    def stages(self, config: "SynthConfig", checks: list) -> list:
        return [*self.before(config), *checks, *self.after(config)]


QUESTION = Mode(
    "question", "a whole new question, its correct answer and three wrong ones, from a many-shot prompt",
    checks=("solve", "round-trip"), per_misconception=1, bases=False, wrong_answer=True,
    before=lambda c: [QuestionGenerator()],
    after=lambda c: [RationaleWriter(), NearDuplicates(c.near_duplicate_threshold)])

# Two base questions a target lifted unseen MAP@25 by +0.026 on 3 folds against +0.016 with one; a third, inside
# the noise, for 1.5x the items (docs/results/2026-12-03-two-base-questions-a-target.md).
DISTRACTOR = Mode(
    "distractor", "a new wrong answer to a real question whose construct fits the target (the real question "
    "and correct answer are kept)",
    checks=("round-trip",), per_misconception=2, bases=True, wrong_answer=True,
    before=lambda c: [DistractorWriter()],
    after=lambda c: [RationaleWriter() if c.rationale == "teacher" else WorkingAsRationale(), RepeatedDistractors()])

PAIRING = Mode(
    "pairing", "no LLM: the target's best-fitting real questions labelled with it, no wrong answer (the control "
    "an LLM mode's lift is measured against; seconds for every target)",
    checks=(), per_misconception=2, bases=True, wrong_answer=False,
    before=lambda c: [PairRealQuestion()], after=lambda c: [])

MODES: dict[str, Mode] = {m.name: m for m in (DISTRACTOR, QUESTION, PAIRING)}
DEFAULT_MODE = "distractor"


def stages_for(config: "SynthConfig") -> list:
    """The run's stages, in order."""
    from factory.checks import CheckError, build_check
    from factory.world import ConfigError

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
    from factory.checks import BUILT_IN
    from factory.config import SynthConfig

    config = SynthConfig(data_dir=None)  # type: ignore[arg-type]
    stages = [*(s for mode in MODES.values() for s in mode.stages(config, [])), *BUILT_IN]
    columns: dict[str, str] = {}
    for stage in stages:
        columns.update(stage.columns)
    return columns
