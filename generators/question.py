"""Stage ``generate`` (question mode): one target misconception -> one new question with four options.

The system message (instructions plus real examples of the cluster) is the
same for every target of a cluster; the user message names the target.  The
answer must be one JSON object (grammar-constrained where the backend can do
it); :meth:`QuestionGenerator.parse` validates it into :class:`GeneratedQuestion`.
An answer that breaks the option rules or copies a real question is retried
with a new seed; after ``--max-attempts`` the item is rejected (stage ``rules``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eedi import Pair
from llm.stage import TemplateStep
from eedi.answers import check_options
from llm.base import ChatRequest
from llm.parsing import parse_model

MAX_QUESTION_CHARS = 1500
MAX_ANSWER_CHARS = 300


class GeneratedQuestion(BaseModel):
    """A generated item, validated. The LLM's output is untrusted: every field is checked."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)

    subject: str
    construct_name: str = Field(alias="construct")  # "construct" would shadow BaseModel.construct
    question: str
    correct_answer: str
    misconception_answer: str
    other_wrong_answers: list[str]

    @field_validator("subject", "construct_name", "correct_answer", "misconception_answer")
    @classmethod
    def _short_text(cls, v: str) -> str:
        return _bounded(v, 1, MAX_ANSWER_CHARS)

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        return _bounded(v, 10, MAX_QUESTION_CHARS)

    @field_validator("other_wrong_answers")
    @classmethod
    def _others(cls, v: list[str]) -> list[str]:
        v = [x.strip() if isinstance(x, str) else x for x in v]
        if len(v) != 2:
            raise ValueError(f"has {len(v)} answers, expected 2")
        for x in v:
            if not isinstance(x, str) or not x or len(x) > MAX_ANSWER_CHARS:
                raise ValueError("must be 2 non-empty short strings")
        return v


def _bounded(v: str, shortest: int, longest: int) -> str:
    if not v:
        raise ValueError("is empty")
    if len(v) < shortest:
        raise ValueError(f"is shorter than {shortest} characters")
    if len(v) > longest:
        raise ValueError(f"is longer than {longest} characters")
    return v


# Written by hand rather than from pydantic: no length bounds, which would blow up a GBNF grammar.
JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "subject": {"type": "string"},
        "construct": {"type": "string"},
        "question": {"type": "string"},
        "correct_answer": {"type": "string"},
        "misconception_answer": {"type": "string"},
        "other_wrong_answers": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
    },
    "required": ["subject", "construct", "question", "correct_answer", "misconception_answer",
                 "other_wrong_answers"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Shot:
    """A real example shown to the generator."""

    key: str  # QuestionId_Answer
    misconception: str
    json: str  # the example in the question generator's answer format
    question: str = ""
    answer: str = ""  # the wrong answer the misconception leads to


@dataclass(frozen=True)
class Target:
    """One item to make: the ``item_index``-th item for a misconception.

    ``base`` (distractor mode): the real question the item writes a new wrong answer for.
    """

    misconception_id: int
    misconception_name: str
    cluster_id: int
    item_index: int
    seed: int
    shots: tuple[Shot, ...]
    base: Pair | None = None


class QuestionGenerator(TemplateStep):
    name = "generate"
    role = "generator"
    columns: dict[str, str] = {}  # it fills the base question columns
    temperature = 0.8
    max_tokens = 400
    json_schema = JSON_SCHEMA

    def sample_prompt(self, item: Any) -> None:
        self.prompt(item.target)

    def prompt(self, target: Target) -> ChatRequest:
        return self.request(target.seed, shots=target.shots, misconception=target.misconception_name)

    def parse(self, target: Target, text: str) -> GeneratedQuestion:
        return parse_model(GeneratedQuestion, text)

    def run(self, items: list[Any], ctx: Any) -> None:
        def rules(target: Target, q: GeneratedQuestion) -> str | None:
            return (check_options(q.correct_answer, q.misconception_answer, q.other_wrong_answers)
                    or ctx.real_questions.check(ctx.embed(q.question)))

        for it, gen in zip(items, ctx.ask(self, [it.target for it in items], check=rules)):
            it.row["Attempts"] = gen.attempts
            if gen.value is not None:
                q = gen.value
                it.row.update(SubjectName=q.subject, ConstructName=q.construct_name, QuestionText=q.question,
                              CorrectAnswerText=q.correct_answer, IncorrectAnswerText=q.misconception_answer,
                              OtherAnswerTexts=q.other_wrong_answers)
            if not gen.ok:
                it.reject = ctx.reject("rules" if gen.failed_check else "generate", gen.error, gen.raw)
