"""The teacher: a short chain-of-thought rationale for a kept item.

It explains how a pupil holding the misconception goes from the question to
the targeted wrong answer.  The answer is a JSON object with one bounded
string (small models otherwise write long markdown lists until cut off);
:meth:`RationaleWriter.parse` strips labels and rejects text that is too short
or not prose.
"""
from __future__ import annotations

import re

import prompts
from generators.question import GeneratedQuestion, Target, parse_json_object
from llm.base import ChatRequest
from llm.step import ParseError, chat_request

MIN_CHARS, MAX_CHARS = 30, 600
JSON_SCHEMA = {
    "type": "object",
    "properties": {"rationale": {"type": "string", "maxLength": MAX_CHARS}},
    "required": ["rationale"],
    "additionalProperties": False,
}
_LABEL = re.compile(r"^\s*(rationale|explanation|reasoning)\s*:\s*", re.IGNORECASE)


class RationaleWriter:
    name = "teach"

    def __init__(self, temperature: float = 0.3, max_tokens: int = 250):
        self.template = prompts.load("teach")
        self.version = self.template.version
        self.temperature, self.max_tokens = temperature, max_tokens

    def prompt(self, row: tuple[Target, GeneratedQuestion]) -> ChatRequest:
        target, item = row
        system, user = self.template.render(
            question=item.question, correct_answer=item.correct_answer,
            misconception_answer=item.misconception_answer, misconception=target.misconception_name)
        return chat_request(system, user, max_tokens=self.max_tokens, temperature=self.temperature,
                            seed=target.seed, json_schema=JSON_SCHEMA)

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
