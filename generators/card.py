"""The teacher's misconception card: a short explanation of one misconception and one worked wrong example.

A card is written once per misconception from its name alone (no real question of it is shown, so a card
leaks nothing of the rows a fold holds out) and appended to the misconception's document text when the
retriever trains and ranks (``rankers.texts.doc_text``).  ``factory.cards`` runs the step over every
misconception and keeps the cards in the store (``store.cards``).  The answer is a JSON object with two
bounded strings; :func:`clean_card` rejects what is empty, too long, a copy of the name or not prose.
"""
from __future__ import annotations

from typing import Any

from llm.base import ChatRequest
from llm.parsing import ParseError, parse_json_object
from llm.stage import TemplateStep

MIN_EXPLANATION, MAX_EXPLANATION = 30, 300
MIN_EXAMPLE, MAX_EXAMPLE = 8, 200
JSON_SCHEMA = {
    "type": "object",
    "properties": {"explanation": {"type": "string", "maxLength": MAX_EXPLANATION},
                   "example": {"type": "string", "maxLength": MAX_EXAMPLE}},
    "required": ["explanation", "example"],
    "additionalProperties": False,
}


class CardWriter(TemplateStep):
    """``prompt(row)`` / ``parse(row, text)`` over rows ``{"MisconceptionId", "MisconceptionName", "Seed"}``."""

    name = "card"
    role = "teacher"
    temperature = 0.3
    max_tokens = 200
    json_schema = JSON_SCHEMA

    def prompt(self, row: dict) -> ChatRequest:
        return self.request(row["Seed"], misconception=row["MisconceptionName"])

    def parse(self, row: dict, text: str) -> str:
        answer = parse_json_object(text)
        return clean_card(answer.get("explanation"), answer.get("example"), row["MisconceptionName"])


def _prose(value: Any, field: str, lo: int, hi: int) -> str:
    if not isinstance(value, str):
        raise ParseError(f"invalid field: {field} missing or not a string")
    text = " ".join(value.split())
    if len(text) < lo:
        raise ParseError(f"{field} too short: {len(text)} characters")
    if len(text) > hi:
        raise ParseError(f"{field} too long: {len(text)} characters")
    if text.startswith(("{", "```", "#", "- ", "1.")):
        raise ParseError(f"{field} is not prose")
    return text


def clean_card(explanation: Any, example: Any, name: str) -> str:
    """The card as kept: ``<explanation> Example: <example>`` (else ParseError with the reason)."""
    explanation = _prose(explanation, "explanation", MIN_EXPLANATION, MAX_EXPLANATION)
    example = _prose(example, "example", MIN_EXAMPLE, MAX_EXAMPLE)
    if _words(explanation) <= _words(name):
        raise ParseError("explanation only repeats the misconception's name")
    return f"{explanation} Example: {example}"


def _words(text: str) -> set[str]:
    return {w.strip(".,;:!?()\"'").lower() for w in text.split()} - {""}
