"""Stage ``solve`` (question mode): a model answers the generated question on its own; the item is rejected
when its answer does not match the claimed correct answer.

The solver never sees the claimed answers when the correct answer is a number or arithmetic of numbers
(it writes short working, then a final answer, compared by value: ``judges.answers``).  When the correct
answer is text (a word, a statement), no free answer could be compared reliably, so the solver is shown
the four options in a seeded order and names the right one.  Verifying beats asking for an opinion:
2nd place in the competition had a solver model fix each generated question's correct answer.
"""
from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from llm.stage import WORKING_AND_ANSWER, TemplateStep
from eedi.answers import numeric_value, same_answer, stated_answer
from llm.base import ChatRequest
from llm.parsing import parse_model

class Solution(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    working: str
    answer: str

    @field_validator("answer")
    @classmethod
    def _answer(cls, v: str) -> str:
        return stated_answer(v)  # "The answer is 6." is compared as 6


def shown_options(row: dict, seed: int) -> list[str]:
    """The four options in a seeded order, for questions whose correct answer is not a number (else [])."""
    if numeric_value(row["CorrectAnswerText"]) is not None:
        return []
    options = [row["CorrectAnswerText"], row["IncorrectAnswerText"], *row["OtherAnswerTexts"]]
    random.Random(seed).shuffle(options)
    return options


class Solver(TemplateStep):
    name = "solve"
    summary = "a solver answers the question on its own"
    role = "solver"
    columns = {"SolverAnswer": "string"}
    temperature = 0.0
    max_tokens = 200
    json_schema = WORKING_AND_ANSWER
    needs = ("written_answer",)

    def prompt(self, item: Any) -> ChatRequest:
        row = item.row
        return self.request(item.target.seed, question=row["QuestionText"],
                            options=shown_options(row, item.target.seed))

    def parse(self, item: Any, text: str) -> Solution:
        return parse_model(Solution, text)

    @staticmethod
    def verdict(row: dict, answer: str) -> str | None:
        """Why the solver's answer rejects the item, or None when it confirms the correct answer."""
        if same_answer(answer, row["CorrectAnswerText"]):
            return None
        if same_answer(answer, row["IncorrectAnswerText"]):
            return f"solver's answer is the targeted wrong answer: {answer[:80]}"
        return f"solver's answer differs: {answer[:80]} (claimed {row['CorrectAnswerText'][:80]})"

    def run(self, items: list[Any], ctx: Any) -> None:
        for it, out in zip(items, ctx.ask(self, items)):
            if not out.ok:
                it.reject = ctx.reject(self.name, f"invalid solver output: {out.error}", out.raw)
                continue
            it.row["SolverAnswer"] = out.value.answer
            problem = self.verdict(it.row, out.value.answer)
            if problem:
                it.reject = ctx.reject(self.name, problem, out.raw)
            else:
                it.passed(self.name)
