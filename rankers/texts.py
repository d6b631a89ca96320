"""How a row becomes the retriever's query and a misconception its document, the same for real and synthetic rows.

A *row* is either an :class:`eedi.Pair` (real) or a dict read from the dataset store
(synthetic); both carry ``SubjectName``, ``ConstructName``, ``QuestionText``,
``CorrectAnswerText`` and ``IncorrectAnswerText``.  Synthetic rows also carry a
``Rationale`` (the teacher's account of the pupil's reasoning); real rows have none.

- query: subject, construct, correct answer, wrong answer (left out where a row has none: the
  pairing mode's rows), (optionally) the rationale, then the question.  The answers carry most of the signal and come before the
  question, so a model's maximum sequence length cuts the end of a long question
  rather than the answers; the question is also clipped to ``QUESTION_CHARS``.
- document: the misconception name, then its card where the retriever uses cards (``rankers.documents``).
"""
from __future__ import annotations

from typing import Any

from eedi.rows import attr

QUESTION_CHARS = 500  # 99% of real questions are shorter (median 121 characters)
RATIONALE_CHARS = 400


def field(row: Any, name: str) -> str:
    """A text field of a Pair or a store row; missing or None reads as ''."""
    value = attr(row, name)
    return "" if value is None else str(value).strip()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def query_text(row: Any, with_rationale: bool = False) -> str:
    lines = [
        f"Subject: {field(row, 'SubjectName')}",
        f"Construct: {field(row, 'ConstructName')}",
        f"Correct answer: {field(row, 'CorrectAnswerText')}",
    ]
    wrong = field(row, "IncorrectAnswerText")
    if wrong:  # a pairing row (the LLM-free control) or an answerless twin claims none: the line is left out
        lines.append(f"Wrong answer: {wrong}")
    rationale = field(row, "Rationale") if with_rationale else ""
    if rationale:
        lines.append(f"Pupil's reasoning: {clip(rationale, RATIONALE_CHARS)}")
    lines.append(f"Question: {clip(field(row, 'QuestionText'), QUESTION_CHARS)}")
    return "\n".join(lines)


def doc_text(name: str, card: str = "") -> str:
    card = (card or "").strip()
    return f"{name.strip()}\n{card}" if card else name.strip()
