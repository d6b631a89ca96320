"""Stage ``teach``: the teacher's short chain-of-thought rationale for an item that passed every check.

It explains how a pupil holding the misconception goes from the question to
the targeted wrong answer.  The answer is a JSON object with one bounded
string (small models otherwise write long markdown lists until cut off);
:meth:`RationaleWriter.parse` strips labels and rejects text that is too short
or not prose.
"""
from __future__ import annotations

import re
from typing import Any

from llm.stage import TemplateStep
from llm.base import ChatRequest
from llm.parsing import ParseError, parse_json_object

MIN_CHARS, MAX_CHARS = 30, 600
JSON_SCHEMA = {
    "type": "object",
    "properties": {"rationale": {"type": "string", "maxLength": MAX_CHARS}},
    "required": ["rationale"],
    "additionalProperties": False,
}
_LABEL = re.compile(r"^\s*(rationale|explanation|reasoning)\s*:\s*", re.IGNORECASE)


class RationaleWriter(TemplateStep):
    name = "teach"
    role = "teacher"
    columns: dict[str, str] = {}  # it writes the base column Rationale
    temperature = 0.3
    max_tokens = 250
    json_schema = JSON_SCHEMA

    def prompt(self, item: Any) -> ChatRequest:
        row = item.row
        return self.request(item.target.seed, question=row["QuestionText"], correct_answer=row["CorrectAnswerText"],
                            misconception_answer=row["IncorrectAnswerText"], misconception=row["MisconceptionName"])

    def parse(self, item: Any, text: str) -> str:
        return clean_rationale(parse_json_object(text).get("rationale"))

    def run(self, items: list[Any], ctx: Any) -> None:
        for it, rationale in zip(items, ctx.ask(self, items)):
            if rationale.ok:
                it.row["Rationale"] = rationale.value
            else:
                it.reject = ctx.reject(self.name, rationale.error, rationale.raw)


def clean_rationale(value: Any) -> str:
    """A rationale as kept: a string of prose, labels stripped, within the length bounds (else ParseError)."""
    if not isinstance(value, str):
        raise ParseError("invalid field: rationale missing or not a string")
    text = _LABEL.sub("", value.strip()).strip()
    if len(text) < MIN_CHARS:
        raise ParseError(f"rationale too short: {len(text)} characters")
    if len(text) > MAX_CHARS:
        raise ParseError(f"rationale too long: {len(text)} characters")
    if text.startswith(("{", "```", "#", "1.", "- ")):
        raise ParseError("rationale is not prose")
    return text
