"""The many-shot question generator: one target misconception -> one new question.

The system message (instructions plus real examples of the cluster) is the
same for every target of a cluster; the user message names the target.  The
answer must be one JSON object (grammar-constrained where the backend can do
it); :meth:`QuestionGenerator.parse` validates it into :class:`GeneratedQuestion`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llm.base import ChatRequest
from llm.step import ParseError, TemplateStep

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
    json: str  # the example in the answer format


@dataclass(frozen=True)
class Target:
    """One item to make: the ``item_index``-th question for a misconception."""

    misconception_id: int
    misconception_name: str
    cluster_id: int
    item_index: int
    seed: int
    shots: tuple[Shot, ...]


# LLMs often write LaTeX unescaped inside JSON strings: "\frac" then decodes as a form feed
# followed by "rac", "\times" as a tab. A backslash that starts one of these commands is LaTeX.
_LATEX = re.compile(
    r"(?<!\\)\\(?=(?:frac|dfrac|tfrac|times|div|circ|sqrt|neq|leq|geq|le|ge|cdot|left|right|text|"
    r"mathrm|mathbf|degree|pm|approx|angle|triangle|begin|end|quad|overline|underline|pi|theta|"
    r"infty|sum|log|sin|cos|tan|hline|square|ldots|dots|prime|bmod|equiv|notin|in)(?![a-zA-Z]))")


def escape_latex(text: str) -> str:
    return _LATEX.sub(r"\\\\", text)


def parse_json_object(text: str) -> dict:
    """The first JSON object in ``text`` (tolerating code fences or chatter around it)."""
    start = text.find("{")
    if start < 0:
        raise ParseError("no JSON object in output")
    try:
        value, _ = json.JSONDecoder().raw_decode(escape_latex(text[start:]))
    except json.JSONDecodeError as e:
        raise ParseError(f"invalid JSON: {e.msg}") from None
    if not isinstance(value, dict):
        raise ParseError("invalid JSON: not an object")
    return value


def validation_reason(e: ValidationError) -> str:
    first = e.errors()[0]
    field = ".".join(str(x) for x in first.get("loc", ())) or "output"
    message = first.get("msg", "invalid").removeprefix("Value error, ")
    return f"invalid field: {field} {message}"


class QuestionGenerator(TemplateStep):
    name = "generate"
    temperature = 0.8
    max_tokens = 400
    json_schema = JSON_SCHEMA

    def prompt(self, target: Target) -> ChatRequest:
        return self.request(target.seed, shots=target.shots, misconception=target.misconception_name)

    def parse(self, target: Target, text: str) -> GeneratedQuestion:
        data = parse_json_object(text)
        try:
            return GeneratedQuestion.model_validate(data)
        except ValidationError as e:
            raise ParseError(validation_reason(e)) from None
