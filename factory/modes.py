"""The factory's modes: what an item is, how targets are planned, which stages run, and the defaults.

A mode is one ``Mode`` value in ``MODES``; ``pipelines.synth --mode`` offers them all, its help and the
defaults come from here, and ``factory.stages.stages_for`` builds a run's stage list from the mode's stages
around the chosen checks (``factory.checks``). To add a mode: write its stages (``generators/``), add one ``Mode``
below (docs/extending.md).

    question:   generate -> [checks] -> teach -> near-duplicate
    distractor: distract (--writer direct | solve-first) [-> choose, --answers N] -> [checks] -> working | teach
                -> repeat
    pairing:    pair -> [checks]                                (no LLM: the control every lift is measured against)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from factory.checks import build_check
from generators import QuestionGenerator, RationaleWriter
from generators.distractor import WRITERS, WorkingAsRationale
from generators.pairing import PairRealQuestion
from judges import ChooseAnswer
from judges.rules import NearDuplicates, RepeatedDistractors


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str  # one line for --help
    checks: tuple[str, ...]  # the checks run by default, in order
    per_misconception: int  # items per target by default
    bases: bool  # each item keeps a real base question (factory.plan.BasePicker): its k-th item the k-th base
    wrong_answer: bool  # its rows carry a wrong answer (the checks pick and judge read one)
    before: Callable[[Any], list]  # the stages before the checks
    after: Callable[[Any], list]  # the stages after them

    def stages(self, config: Any, checks: list) -> list:  # config: a factory.config.SynthConfig
        return [*self.before(config), *checks, *self.after(config)]

    def lacks(self, check: Any) -> str | None:
        """Why a check (a ``llm.stage.Stage``) cannot run on this mode's rows, or None when it can."""
        missing = next((n for n in check.needs if n not in ROW_PARTS or not ROW_PARTS[n].given(self)), None)
        if missing is None:
            return None
        words = ROW_PARTS[missing].words if missing in ROW_PARTS else missing
        return f"--checks {check.name} reads {words}, which --mode {self.name} rows do not have"


class RowPart(NamedTuple):
    words: str  # what the error says a row lacks
    given: Callable[[Mode], bool]  # whether a mode's rows carry it


# What a check may need from a row (``llm.stage.Stage.needs``): one entry per part, read from the Mode's fields.
ROW_PARTS = {"wrong_answer": RowPart("a wrong answer to judge", lambda m: m.wrong_answer),
             "written_answer": RowPart("a correct answer the LLM wrote", lambda m: not m.bases)}  # no real base


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
    before=lambda c: [WRITERS[c.writer](answers=c.answers),
                      *([ChooseAnswer(build_check("pick", c.check_settings))] if c.answers > 1 else [])],
    after=lambda c: [RationaleWriter() if c.rationale == "teacher" else WorkingAsRationale(), RepeatedDistractors()])

PAIRING = Mode(
    "pairing", "no LLM: the target's best-fitting real questions labelled with it, no wrong answer (the control "
    "an LLM mode's lift is measured against; seconds for every target)",
    checks=(), per_misconception=2, bases=True, wrong_answer=False,
    before=lambda c: [PairRealQuestion()], after=lambda c: [])

MODES: dict[str, Mode] = {m.name: m for m in (DISTRACTOR, QUESTION, PAIRING)}
DEFAULT_MODE = "distractor"
# Modes whose ItemKey leaves out the mode (their stored keys predate it); every mode added later gets ":mode=NAME"
# (SynthConfig.key_tag), so its items never collide with another mode's over the same bases and generator.
KEYED_WITHOUT_MODE = ("question", "distractor", "pairing")

