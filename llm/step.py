"""An LLM step is two methods: ``prompt(row) -> ChatRequest`` and ``parse(row, text) -> value``.

:func:`run_step` asks the backend, parses, and on an invalid answer retries
with a different seed, up to a bound; the LLM's output is untrusted input, so
``parse`` validates everything and raises :class:`ParseError` with a short
reason when it does not fit.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Generic, Protocol, TypeVar

from llm.base import Backend, ChatRequest, Usage

T = TypeVar("T")
Row = TypeVar("Row", contravariant=True)

SEED_STRIDE = 1_000_003  # retries use seed + attempt * stride


class ParseError(ValueError):
    """The LLM's answer does not fit the expected shape (message: the reason)."""


class LLMStep(Protocol[Row, T]):
    name: str  # the stage, e.g. "generate"
    version: str  # the prompt templates' content hash

    def prompt(self, row: Row) -> ChatRequest: ...

    def parse(self, row: Row, text: str) -> T: ...


@dataclass
class StepOutcome(Generic[T]):
    value: T | None  # None when no answer parsed; the last parsed value when it failed the check
    raw: str  # the last raw answer
    error: str | None  # why the last attempt failed
    attempts: int
    failed_check: bool = False  # the last attempt parsed but failed the caller's check

    @property
    def ok(self) -> bool:
        return self.error is None


def run_step(step: LLMStep[Any, T], backend: Backend, row: Any, usage: Usage, max_attempts: int = 3,
             check: Callable[[T], str | None] | None = None) -> StepOutcome[T]:
    """Ask, parse and (optionally) check; retry with a new seed while the answer is invalid.

    ``check`` returns a reason when a parsed value is unusable (a rule it breaks);
    such an answer is retried like an unparsable one.
    """
    request = step.prompt(row)
    raw, error, failed_check, value = "", "no attempt made", False, None
    for attempt in range(max_attempts):
        attempt_request = dataclasses.replace(request, seed=request.seed + attempt * SEED_STRIDE)
        response = backend.chat(attempt_request)
        usage.add(response)
        raw = response.text
        try:
            if response.finish_reason == "length":
                raise ParseError(f"output cut at max_tokens={request.max_tokens}")
            value = step.parse(row, raw)
        except ParseError as e:
            error, failed_check, value = str(e) or "invalid output", False, None
        else:
            problem = check(value) if check else None
            if problem is None:
                return StepOutcome(value, raw, None, attempt + 1)
            error, failed_check = problem, True
        kind = error.split(":")[0]
        usage.failures[kind] = usage.failures.get(kind, 0) + 1
    return StepOutcome(value, raw, error, max_attempts, failed_check)


def chat_request(system: str, user: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=(("system", system), ("user", user)), **kwargs)


class TemplateStep:
    """Base for a step whose prompt is the template pair ``prompts/<name>.{system,user}.j2``.

    Subclasses set ``name``, the sampling defaults and ``json_schema``, and
    implement ``prompt(row)`` (usually one call to :meth:`request`) and ``parse``.
    """

    name: str
    temperature: float = 0.7
    max_tokens: int = 256
    json_schema: dict | None = None

    def __init__(self, temperature: float | None = None, max_tokens: int | None = None):
        import prompts

        self.template = prompts.load(self.name)
        self.version = self.template.version
        if temperature is not None:
            self.temperature = temperature
        if max_tokens is not None:
            self.max_tokens = max_tokens

    def request(self, seed: int, **context: Any) -> ChatRequest:
        system, user = self.template.render(**context)
        return chat_request(system, user, max_tokens=self.max_tokens, temperature=self.temperature,
                            seed=seed, json_schema=self.json_schema)
