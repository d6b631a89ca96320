"""What a stage works on and with: the item (its target, the store row being filled in, its reject) and the
run's context (backends by role, accounting, the misconceptions and their embeddings).

The stage interface itself is ``llm.stage.Stage`` (below generators and judges, which implement it without
importing the factory); a run's stage list is its mode's (``factory.modes``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embeddings import Embedder, nearest
from generators import Target
from judges import NearDuplicateIndex
from llm import Backend, Usage
from llm.step import StepOutcome, run_steps


@dataclass
class Reject:
    stage: str
    reason: str
    raw: str = ""  # the LLM answer that was rejected, if any


@dataclass
class Item:
    """One work item on its way through the stages: its target and the store row being filled in."""

    target: Target
    row: dict
    reject: Reject | None = None

    def passed(self, check: str) -> None:
        """Record that the item passed a check (the row's ``Checks`` column)."""
        self.row.setdefault("Checks", []).append(check)


@dataclass
class Context:
    """What stages may use: backends by role, accounting by stage, the misconceptions and their embeddings."""

    backends: dict[str, Backend]
    usage: dict[str, Usage]  # by stage name
    embedder: Embedder
    names: dict[int, str]  # MisconceptionId -> name
    ids: list[int]  # rows of ``vectors``
    vectors: np.ndarray  # misconception-name embeddings (normalised)
    real_questions: NearDuplicateIndex  # real question texts: a generated copy is retried
    kept: Any = None  # pyarrow table of the store's kept rows (QuestionId, QuestionText, BaseQuestionId, ...)
    max_attempts: int = 3
    _vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def ask(self, step, rows: Sequence[Any], stage: str | None = None,
            check: Callable[[Any, Any], str | None] | None = None) -> list[StepOutcome]:
        """Run an LLM step over rows on its role's backend, accounted under the stage's name."""
        name = stage or step.name
        attempts = min(self.max_attempts, step.max_attempts or self.max_attempts)
        return run_steps(step, self.backends[step.role], rows, self.usage[name], attempts, check)

    @staticmethod
    def reject(stage: str, reason: str, raw: str = "") -> Reject:
        return Reject(stage, reason, raw or "")

    def embed(self, text: str) -> np.ndarray:
        """A text's embedding, remembered for the batch (the engine clears it between batches)."""
        if text not in self._vectors:
            self._vectors[text] = self.embedder.encode([text])[0]
        return self._vectors[text]

    def nearest_misconceptions(self, misconception_id: int, k: int) -> list[int]:
        """The k misconceptions whose names are nearest to this one's (itself excluded), nearest first."""
        row = self.ids.index(misconception_id)
        return [self.ids[i] for i in nearest(self.vectors, self.vectors[row], k, exclude={row})]

    def retrieved_misconceptions(self, query: str, k: int, exclude: int | None = None) -> list[int]:
        """The k misconceptions whose names are most similar to a query text (``exclude`` left out), best first."""
        skip = set() if exclude is None else {self.ids.index(exclude)}
        return [self.ids[i] for i in nearest(self.vectors, self.embed(query), k, exclude=skip)]

    def end_batch(self) -> None:
        self._vectors.clear()
