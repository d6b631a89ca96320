"""An LLM step is two methods: ``prompt(row) -> ChatRequest`` and ``parse(row, text) -> value``
(or ``parse_response(row, response)`` for a step that reads more than the text, e.g. logprobs).

:func:`run_steps` asks the backend for a batch of rows, parses, and on an
invalid answer retries with a different seed, up to a bound; the LLM's output is untrusted input, so
``parse`` validates everything and raises :class:`ParseError` with a short
reason when it does not fit.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Protocol, Sequence, TypeVar

from llm.base import Backend, ChatRequest, ChatResponse, Usage
from llm.parsing import ParseError

T = TypeVar("T")
Row = TypeVar("Row", contravariant=True)

SEED_STRIDE = 1_000_003  # retries use seed + attempt * stride


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


def run_steps(step: LLMStep[Any, T], backend: Backend, rows: Sequence[Any], usage: Usage, max_attempts: int = 3,
              check: Callable[[Any, T], str | None] | None = None) -> list[StepOutcome[T]]:
    """Ask for every row at once, parse and (optionally) check; retry the invalid ones with a new seed.

    Attempt ``k`` of every still-invalid row goes out as one batch (seed +
    ``k * SEED_STRIDE``), so a batching engine sees them together and rows
    keep the order given (shared prompt prefixes stay adjacent).  ``check``
    ``check(row, value)`` returns a reason when a parsed value is unusable (a rule it breaks); such
    an answer is retried like an unparsable one.  The outcome of each row is
    independent of the others, so a re-run replaying cached answers ends the same.
    """
    started = time.perf_counter()
    requests = [step.prompt(row) for row in rows]
    outcomes: list[StepOutcome[T]] = [StepOutcome(None, "", "no attempt made", 0) for _ in rows]
    pending = list(range(len(rows)))
    try:
        for attempt in range(max_attempts):
            if not pending:
                break
            batch = [dataclasses.replace(requests[i], seed=requests[i].seed + attempt * SEED_STRIDE) for i in pending]
            for j, response in backend.chat_many(batch):
                i = pending[j]
                usage.add(response, schema=requests[i].json_schema is not None)
                outcomes[i] = _judge_answer(step, rows[i], response, requests[i].max_tokens, attempt + 1, check)
                if not outcomes[i].ok:
                    usage.fail(outcomes[i].error.split(":")[0])
            pending = [i for i in pending if not outcomes[i].ok]
    finally:
        usage.wall_seconds += time.perf_counter() - started
    return outcomes


def _judge_answer(step, row, response: ChatResponse, max_tokens: int, attempts: int, check) -> StepOutcome:
    parse_response = getattr(step, "parse_response", None)  # such a step reads the whole answer itself
    try:
        if response.finish_reason == "length" and parse_response is None:
            raise ParseError(f"output cut at max_tokens={max_tokens}")
        value = parse_response(row, response) if parse_response else step.parse(row, response.text)
    except ParseError as e:
        return StepOutcome(None, response.text, str(e) or "invalid output", attempts)
    problem = check(row, value) if check else None
    return StepOutcome(value, response.text, problem, attempts, failed_check=problem is not None)


def chat_request(system: str, user: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=(("system", system), ("user", user)), **kwargs)
