"""The base of every templated LLM step: a template pair in ``prompts/`` plus sampling defaults.

A step (curator-style) is ``prompt(row) -> ChatRequest`` and ``parse(row, text) -> value``; this base
loads and checks the templates ``prompts/<name>.{system,user}.j2`` (their content hash is the step's
``version``) and turns a rendered pair into a :class:`llm.ChatRequest`.
"""
from __future__ import annotations

from typing import Any

import prompts
from llm.base import ChatRequest
from llm.step import chat_request


MAX_WORKING_CHARS = 300
# "working, then the answer": the distractor writer's and the solver's answer; the bound on the working
# keeps a small model from rambling until it is cut off.
WORKING_AND_ANSWER = {
    "type": "object",
    "properties": {"working": {"type": "string", "maxLength": MAX_WORKING_CHARS}, "answer": {"type": "string"}},
    "required": ["working", "answer"],
    "additionalProperties": False,
}


class TemplateStep:
    """Subclasses set ``name`` (the template pair), the sampling defaults and ``json_schema``, and
    implement ``prompt(row)`` (usually one call to :meth:`request`) and ``parse``."""

    name: str
    temperature: float = 0.7
    max_tokens: int = 256
    json_schema: dict | None = None
    logprobs: int = 0

    def __init__(self, temperature: float | None = None, max_tokens: int | None = None):
        self.template = prompts.load(self.name)
        self.version = self.template.version
        if temperature is not None:
            self.temperature = temperature
        if max_tokens is not None:
            self.max_tokens = max_tokens

    def request(self, seed: int, **context: Any) -> ChatRequest:
        system, user = self.template.render(**context)
        return chat_request(system, user, max_tokens=self.max_tokens, temperature=self.temperature,
                            seed=seed, json_schema=self.json_schema, prompt_version=self.version,
                            logprobs=self.logprobs)
