"""Stage ``judge``: the rubric judge LLM scores an item 0-10 (prompts/judge.*.j2) with a one-sentence reason;
items below ``min_score`` are rejected. Measured at chance with the embedded models
(docs/results/2026-11-22-question-mode-rubric-judge.md); kept for
capable judges behind ``--base-url`` or ``--engine vllm``."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from llm.stage import Option, TemplateStep, number
from llm.base import ChatRequest
from llm.parsing import parse_model

DEFAULT_MIN_SCORE = 7.0

# The reason comes first (the judge reasons, then scores) and is bounded, so it cannot ramble on.
REASON_MAX_CHARS = 200
JSON_SCHEMA = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": REASON_MAX_CHARS},
                   "score": {"type": "integer", "minimum": 0, "maximum": 10}},
    "required": ["reason", "score"],
    "additionalProperties": False,
}


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    score: int
    reason: str

    @field_validator("score")
    @classmethod
    def _range(cls, v: int) -> int:
        if not 0 <= v <= 10:
            raise ValueError(f"{v} is outside 0-10")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v:
            raise ValueError("is empty")
        return v[:REASON_MAX_CHARS]


class RubricJudge(TemplateStep):
    name = "judge"
    summary = "a 0-10 rubric"
    role = "judge"
    columns = {"JudgeScore": "float64", "JudgeReason": "string"}
    temperature = 0.0
    max_tokens = 120
    json_schema = JSON_SCHEMA
    needs = ("wrong_answer",)
    options = (Option("min_score", "--min-score", "check judge: score (0-10) an item needs to be kept",
                      DEFAULT_MIN_SCORE, number(float, 0, 10, why="the judge scores 0-10"), "S"),)

    def __init__(self, min_score: float = DEFAULT_MIN_SCORE):
        super().__init__()
        self.min_score = min_score

    def settings(self) -> dict:
        return {"min_score": self.min_score}

    def prompt(self, item: Any) -> ChatRequest:
        r = item.row
        return self.request(item.target.seed, misconception=r["MisconceptionName"], subject=r["SubjectName"],
                            construct=r["ConstructName"], question=r["QuestionText"],
                            correct_answer=r["CorrectAnswerText"], misconception_answer=r["IncorrectAnswerText"],
                            other_wrong_answers=r["OtherAnswerTexts"])

    def parse(self, item: Any, text: str) -> Verdict:
        return parse_model(Verdict, text)

    def run(self, items: list[Any], ctx: Any) -> None:
        for it, verdict in zip(items, ctx.ask(self, items)):
            if not verdict.ok:
                it.reject = ctx.reject(self.name, f"invalid judge output: {verdict.error}", verdict.raw)
                continue
            it.row.update(JudgeScore=float(verdict.value.score), JudgeReason=verdict.value.reason)
            if verdict.value.score < self.min_score:
                it.reject = ctx.reject(self.name, f"score below {self.min_score:g}: {verdict.value.score}")
            else:
                it.passed(self.name)
