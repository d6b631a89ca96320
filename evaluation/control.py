"""The controls an LLM store's lift is read against, one registry (``CONTROLS``; ``pipelines.evaluate --control``).

A control adds training conditions beside the store's, each a set of rows and what it is a baseline of: every
store condition (``Arm.of`` None) or one store version's (its twin). ``EvalConfig.comparisons`` turns that into
the lift lines of the report: each store condition against real rows and against each of its baselines.
To add a control: a function that makes its arms, and one ``Control`` in ``CONTROLS``.

- ``pairing``: for each evaluated fold ``f``, ``pipelines.synth --mode pairing --cluster all --hide-fold f`` as a
  library call into its own store (``<report>/control-store``): every target misconception of the hidden fold
  gets its best-fitting real questions, chosen by the same planner (and so the same base questions, in the same
  order) as a distractor run over the same targets, with no wrong answer and no LLM call. Trained as
  ``real+control``, a baseline of every store condition.
- ``no-answers``: each store condition's twin, ``real+V-no-answers``: the very same rows (questions, labels,
  number and repeats) with the LLM's wrong answer and the pupil's reasoning left out, so the lift of a condition
  over its twin is what the LLM's answers add and nothing else.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eedi.splits import FoldSpec
from factory import SynthConfig, run
from trainers.data import read_synthetic

CONDITION = "control"  # the pairing control's synthetic condition: real+control
NO_ANSWERS = "-no-answers"  # the suffix of a store version's answerless twin
ANSWER_COLUMNS = ("IncorrectAnswerText", "Rationale", "PupilWorking")  # what the twin leaves out


class ControlError(ValueError):
    """A control that cannot be made from what was given (one line)."""


@dataclass(frozen=True)
class Inputs:
    """What a control may use: the data, a folder of its own, the evaluated folds."""
    data_dir: Path
    work: Path  # <report>/control-store for the pairing rows
    fold_by: str
    folds: int
    fold_seed: int
    only_folds: list[int] | None
    log: Callable[[str], None] = print


@dataclass(frozen=True)
class Arm:
    rows: list[dict]
    of: str | None = None  # the store version it is the twin of; None: a baseline of every store condition


@dataclass(frozen=True)
class Control:
    name: str  # --control NAME
    help: str  # for --control's help
    make: Callable[[dict[str, list[dict]], Inputs], dict[str, Arm]]  # (store versions' rows, inputs) -> new arms


def pairing_control(data_dir: Path, store: Path, fold_by: str, folds: int, fold_seed: int,
                    only_folds: list[int] | None, per_misconception: int | None = None,
                    log: Callable[[str], None] = print) -> list[dict]:
    """The kept rows of a pairing run per evaluated fold (re-runs add nothing: their items are stored)."""
    for fold in only_folds if only_folds is not None else range(folds):
        config = SynthConfig(data_dir=data_dir, store=store, mode="pairing", per_misconception=per_misconception,
                             hide_fold=FoldSpec(fold_by, folds, fold_seed, fold), progress=False)
        record = run(config, out=io.StringIO(), err=io.StringIO())
        made = record.get("stages", [{}])[0].get("passed", 0) if record["status"] == "complete" else 0
        log(f"control: fold {fold}: {made} pairing rows made, {record.get('skipped', record.get('skipped_done', 0))} "
            f"already in {store}")
    return read_synthetic(store, "all").rows


def without_answers(rows: list[dict]) -> list[dict]:
    """The same rows, each with its wrong answer and the pupil's reasoning left out: the query text then drops
    the wrong-answer line, as for a pairing row, so trained on, they measure what the LLM's answers add. In question
    mode the LLM's question stays: the twin then measures the answers alone."""
    return [{**r, **{c: "" for c in ANSWER_COLUMNS if c in r}} for r in rows]


def _pairing(stores: dict[str, list[dict]], given: Inputs) -> dict[str, Arm]:
    rows = pairing_control(given.data_dir, given.work, given.fold_by, given.folds, given.fold_seed,
                           given.only_folds, log=given.log)
    return {CONDITION: Arm(rows)}


def _twins(stores: dict[str, list[dict]], given: Inputs) -> dict[str, Arm]:
    if not stores:
        raise ControlError("--control no-answers: the twins are of a store's conditions; give --store")
    return {f"{name}{NO_ANSWERS}": Arm(without_answers(rows), of=name) for name, rows in stores.items()}


CONTROLS: dict[str, Control] = {c.name: c for c in (
    Control("pairing", "also train on real + pairing-mode rows for every target of each evaluated fold (synth --mode "
                       "pairing --hide-fold F, made in seconds into REPORT/control-store), and report each store's "
                       "lift over it as well as over real rows", _pairing),
    Control("no-answers", "each store condition also trains as <condition>-no-answers, the same rows with the LLM's "
                          "wrong answer and reasoning left out, and the report gives what the answers add", _twins),
)}


def add_controls(names: list[str], stores: dict[str, list[dict]], given: Inputs) -> dict[str, Arm]:
    """The arms of the named controls, made from the store versions' rows (which no control changes)."""
    arms: dict[str, Arm] = {}
    for name in names:
        arms.update(CONTROLS[name].make(dict(stores), given))
    return arms
