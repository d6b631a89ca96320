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

and, where the defaults do not fit: ``options`` (its settings users choose on the command line, each an
:class:`Option`; the constructor takes them as keyword arguments), ``needs`` (what a mode's rows must carry
for it: ``factory.modes.ROW_PARTS``), ``settings()`` (the thresholds that decide its verdicts: part of the
items' ``ChecksKey``), ``setup(ctx)`` (once, before the first batch), ``ordered = True`` (it compares an
item with every earlier one of the run, so it runs in the committing process, in plan order; only the
last stages of a list may be), ``logprobs`` (its role reads token log-probabilities) and
``sample_prompt(item)`` (render its prompt once for the template check before a run).

A **templated LLM step** (:class:`TemplateStep`, curator-style) is also ``prompt(row) -> ChatRequest``
and ``parse(row, text) -> value`` (or ``parse_response(row, response)`` to read logprobs); it loads
``prompts/<name>.{system,user}.j2``, whose content hash is its ``version``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import prompts
from llm.base import ChatRequest
from llm.step import chat_request


@dataclass(frozen=True)
class Option:
    """One setting of a stage that users choose on the command line: ``flag`` sets the constructor's ``field``.

    ``parse`` turns the flag's text into the value, raising ``ValueError`` with the reason when it is out of
    range; ``pipelines.synth`` builds its flag, help and error message from this."""

    field: str
    flag: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] = str
    metavar: str = "X"
    aliases: tuple[str, ...] = ()  # older spellings of the flag, still accepted


def number(kind: type = float, lo: float | None = None, hi: float | None = None, low_open: bool = False,
           why: str = ""):
    """An ``Option.parse``: a number of ``kind`` within [lo, hi] ((lo, hi] with ``low_open``); ``why`` says what
    the bound is for, in the message."""
    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise ValueError(f"expected a {'whole number' if kind is int else 'number'}, got {text!r}") from None
        low_ok = lo is None or (x > lo if low_open else x >= lo)
        if not (low_ok and (hi is None or x <= hi) and x == x):  # x == x: not NaN
            left = "(" if low_open else "["
            bound = (f"in {left}{lo:g}, {hi:g}]" if lo is not None and hi is not None
                     else f"{'more than' if low_open else 'at least'} {lo:g}" if lo is not None else f"at most {hi:g}")
            raise ValueError(f"must be {bound}{f' ({why})' if why else ''}, got {text}")
        return x

    parse.__name__ = kind.__name__
    return parse


def folder(text: str) -> Path:
    """An ``Option.parse``: a path."""
    return Path(text)


class Stage:
    name: ClassVar[str]
    summary: ClassVar[str] = ""  # a check's few words in --checks help (default: its docstring's first line)
    role: ClassVar[str | None] = None
    columns: ClassVar[dict[str, str]] = {}
    ordered: ClassVar[bool] = False
    options: ClassVar[tuple[Option, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()  # what a mode's rows must carry for it (factory.modes.ROW_PARTS); () any
    logprobs: int = 0
    version: str = ""  # its prompt templates' content hash; "" for a stage without templates
    max_attempts: int | None = None  # LLM answers tried per item at most; None: the run's --max-attempts

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
