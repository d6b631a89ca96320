"""The interface of a factory stage, and the base of every templated LLM step.

A **stage** works on a batch of items of a synthetic-data run (``factory``): it reads and writes each
item's store row and rejects the items that fail it. It lives here, below ``generators`` and ``judges``,
so that they implement it without importing the factory. Subclass :class:`Stage` and set

- ``name``: its label in reject reasons, counts, the summary and a row's ``Checks``;
- ``role``: the LLM role whose backend it uses (``generator``, ``solver``, ``judge``, ``teacher``), or None;
- ``columns``: the store columns it writes beyond the base ones, ``{name: arrow type}``
  (``string``, ``float64``, ``int64``, ``bool``, ``list<string>``);
- ``run(items, ctx)``: work on the batch's live items (in plan order), writing ``item.row`` and, for an
  item that fails, ``item.reject = ctx.reject(stage, reason, raw)``;

and, where the defaults do not fit: ``settings()`` (the thresholds that decide its verdicts: part of the
items' ``ChecksKey``), ``setup(ctx)`` (once, before the first batch), ``ordered = True`` (it compares an
item with every earlier one of the run, so it runs in the committing process, in plan order; only the
last stages of a list may be), ``logprobs`` (its role reads token log-probabilities) and
``sample_prompt(item)`` (render its prompt once for the template check before a run).

A **templated LLM step** (:class:`TemplateStep`, curator-style) is also ``prompt(row) -> ChatRequest``
and ``parse(row, text) -> value`` (or ``parse_response(row, response)`` to read logprobs); it loads
``prompts/<name>.{system,user}.j2``, whose content hash is its ``version``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import prompts
from llm.base import ChatRequest
from llm.step import chat_request


class Stage:
    name: ClassVar[str]
    role: ClassVar[str | None] = None
    columns: ClassVar[dict[str, str]] = {}
    ordered: ClassVar[bool] = False
    logprobs: int = 0
    version: str = ""  # its prompt templates' content hash; "" for a stage without templates

    def settings(self) -> dict:
        return {}

    def setup(self, ctx: Any) -> None:
        """Once, before the first batch (load a model, index the store's rows)."""

    def run(self, items: list[Any], ctx: Any) -> None:
        raise NotImplementedError

    def sample_prompt(self, item: Any) -> None:
        """Render the stage's prompt for a sample item, so a template error stops a run before any LLM call."""


MAX_WORKING_CHARS = 300
# "working, then the answer": the distractor writer's and the solver's answer; the bound on the working
# keeps a small model from rambling until it is cut off.
WORKING_AND_ANSWER = {
    "type": "object",
    "properties": {"working": {"type": "string", "maxLength": MAX_WORKING_CHARS}, "answer": {"type": "string"}},
    "required": ["working", "answer"],
    "additionalProperties": False,
}


class TemplateStep(Stage):
    """Subclasses set ``name`` (the template pair), the sampling defaults and ``json_schema``, and
    implement ``prompt(row)`` (usually one call to :meth:`request`) and ``parse``."""

    temperature: float = 0.7
    max_tokens: int = 256
    json_schema: dict | None = None

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

    def prompt(self, row: Any) -> ChatRequest:
        raise NotImplementedError

    def sample_prompt(self, item: Any) -> None:
        self.prompt(item)
