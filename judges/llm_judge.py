"""The judge LLM: scores an item 0-10 against the rubric in prompts/judge.*.j2, with a one-sentence reason."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from generators.question import GeneratedQuestion, Target, parse_json_object, validation_reason
from llm.base import ChatRequest
from llm.step import ParseError, TemplateStep

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


class LLMJudge(TemplateStep):
    name = "judge"
    temperature = 0.0
    max_tokens = 120
    json_schema = JSON_SCHEMA

    def prompt(self, row: tuple[Target, GeneratedQuestion]) -> ChatRequest:
        target, item = row
        return self.request(target.seed, misconception=target.misconception_name, **item.model_dump(by_alias=True))

    def parse(self, row: tuple[Target, GeneratedQuestion], text: str) -> Verdict:
        data = parse_json_object(text)
        try:
            return Verdict.model_validate(data)
        except ValidationError as e:
            raise ParseError(validation_reason(e)) from None
