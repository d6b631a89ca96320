"""The LLM-free control: pairing-mode rows for the evaluated folds, made in seconds, beside any store.

For each evaluated fold ``f`` this runs ``pipelines.synth --mode pairing --cluster all --hide-fold f`` as a
library call into its own store (``<report>/control-store``): every target misconception of the hidden fold
gets its best-fitting real questions, chosen by the same planner (and so the same base questions, in the
same order) as a distractor run over the same targets, with no wrong answer and no LLM call. The
evaluation trains ``real+control`` on them like any other store, so an LLM store's lift can be read against
real rows alone and against this control (``uplift(..., baseline="real+control")``).

The second control, ``without_answers``, is each store condition's twin: the very same rows (questions,
labels, number and repeats) with the LLM's wrong answer and the pupil's reasoning left out, so the lift of
a condition over its twin is what the LLM's answers add and nothing else.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from eedi.splits import FoldSpec
from factory import SynthConfig, run
from trainers.data import read_synthetic

CONDITION = "control"  # the synthetic condition's name: real+control
ANSWER_COLUMNS = ("IncorrectAnswerText", "Rationale", "PupilWorking")  # what the twin leaves out


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
    """The same rows, each with its wrong answer and the pupil's reasoning left out: read like pairing rows (the
    query text drops the wrong-answer line), so trained on, they measure what the LLM's answers add. In question
    mode the LLM's question stays: the twin then measures the answers alone."""
    return [{**r, **{c: "" for c in ANSWER_COLUMNS if c in r}, "Mode": "pairing"} for r in rows]
