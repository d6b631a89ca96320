"""The teacher: a short chain-of-thought rationale for a kept item.

It explains how a pupil holding the misconception goes from the question to
the targeted wrong answer.  The answer is a JSON object with one bounded
string (small models otherwise write long markdown lists until cut off);
:meth:`RationaleWriter.parse` strips labels and rejects text that is too short
or not prose.
"""
from __future__ import annotations

import re

from generators.question import GeneratedQuestion, Target, parse_json_object
from llm.base import ChatRequest
from llm.step import ParseError, TemplateStep

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
    temperature = 0.3
    max_tokens = 250
    json_schema = JSON_SCHEMA

    def prompt(self, row: tuple[Target, GeneratedQuestion]) -> ChatRequest:
        target, item = row
        return self.request(target.seed, question=item.question, correct_answer=item.correct_answer,
                            misconception_answer=item.misconception_answer,
                            misconception=target.misconception_name)

    def parse(self, row: tuple[Target, GeneratedQuestion], text: str) -> str:
        value = parse_json_object(text).get("rationale")
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
