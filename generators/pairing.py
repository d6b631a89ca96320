"""Stage ``pair`` (pairing mode): the LLM-free control. A real question whose construct fits the target
misconception, labelled with it, and nothing written by a model.

The planner picks each target's best-fitting real questions exactly as in distractor mode (``factory.plan``);
this stage copies the base question into the row and leaves ``IncorrectAnswerText`` and ``Rationale``
empty: no wrong answer is claimed for the target, so none is invented. ``rankers.texts.query_text`` then
leaves the wrong-answer line out of the row's query, and the trainers accept such a row (``Mode`` is
``pairing``). What these rows lift is what a real question paired with the target's label lifts; every
LLM mode's lift is measured against it (``pipelines.evaluate --control pairing``).
"""
from __future__ import annotations

from typing import Any

from generators.distractor import base_columns
from llm.stage import Stage


class PairRealQuestion(Stage):
    name = "pair"

    def run(self, items: list[Any], ctx: Any) -> None:
        for it in items:
            it.row.update(base_columns(it.target.base), IncorrectAnswerText="", Rationale="", Attempts=0)
