"""Stage ``distract`` (distractor mode): a new wrong answer for a real question, for a target misconception.

The item keeps a real question, its correct answer and its three real wrong answers (``BaseQuestionId``
names it), so its correct answer is right by construction; the model writes only the answer a pupil
holding the target misconception gives, with one line of the pupil's working (a few dozen tokens).
The system message (instructions and the cluster's real examples) is shared by every item of a
cluster; the user message holds the misconception and the question.

The prompt shows the question alone, not its correct answer or options: shown them, the 0.5B model
mostly answers with the correct answer (measured in
docs/results/2026-12-02-why-the-writer-echoes-the-correct-answer.md). Only a question whose answers are a
closed set of words or pictures ("Only Tom", "Acute", a graph) shows them, so that the answer keeps
their form; the planner uses such questions as bases last.

A sentence around a value ("The gradient is 5.") is cut to the value (``eedi.answers.stated_answer``).
An answer equal to the correct one or to one of the question's options, only an option letter, a
sentence where the options are short (five words or more, twice the longest option's), or working
that copies the prompt's placeholder is retried with a new seed; after ``--max-attempts`` the item
is rejected (stage ``rules``).
The working can serve as the row's ``Rationale`` (``--rationale working``).

With ``--answers N`` (more than 1) the writer draws N answers an item, each with its own seed and retries, and
keeps the distinct ones that pass the rules as ``CandidateAnswers``/``CandidateWorkings`` (the first is the
row's answer until ``judges.choose`` picks the one the pick judge finds likeliest for the target).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from llm.stage import MAX_WORKING_CHARS, WORKING_AND_ANSWER, Stage, TemplateStep
from eedi.answers import same_answer, stated_answer, words
from llm.base import ChatRequest
from llm.parsing import ParseError, parse_json_object, parse_model, validation_reason

MAX_ANSWER_CHARS = 120
_LETTER = re.compile(r"^\(?(?:option\s*)?[A-Da-d][).:]?$")
_MATHS = re.compile(r"\d|\\\(|\$")  # a number or LaTeX: an answer of an open form
_ALNUM = re.compile(r"[^\W_]")  # '{"}', '}': no letter or digit (½ and π count)
_JSON_TAIL = re.compile(r'"\s*,\s*$')  # '\boxed{12}",': the answer ran on into the JSON
_PLACEHOLDER = re.compile(r"pupil'?s working,? one short sentence", re.IGNORECASE)  # the schema line, copied
SENTENCE_MIN_WORDS = 5  # an answer of at least this many words, twice any option's, is a sentence
DRAW_STRIDE = 7_919  # --answers: draw j of an item uses seed + j * stride (retries add llm.step.SEED_STRIDE)
MAX_ANSWERS = 8


class Distractor(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    working: str
    answer: str

    @field_validator("answer")
    @classmethod
    def _answer(cls, v: str) -> str:
        if not v:
            raise ValueError("is empty")
        if len(v) > MAX_ANSWER_CHARS:
            raise ValueError(f"is longer than {MAX_ANSWER_CHARS} characters")
        if _LETTER.match(v):
            raise ValueError("is an option letter, not an answer")
        if not _ALNUM.search(v) or v.count("{") != v.count("}") or _JSON_TAIL.search(v):
            raise ValueError("is a piece of the JSON, not an answer")
        return stated_answer(v)

    @field_validator("working")
    @classmethod
    def _working(cls, v: str) -> str:
        if _PLACEHOLDER.search(v):
            raise ValueError("is the prompt's placeholder, not the pupil's working")
        return v[:MAX_WORKING_CHARS]


def options_of(base) -> list[str]:
    """A real question's wrong answers (the pair's own first)."""
    return [base.IncorrectAnswerText, *base.OtherAnswerTexts]


def base_columns(base) -> dict:
    """The columns a row keeps of its real base question (distractor and pairing modes)."""
    return dict(SubjectName=base.SubjectName, ConstructName=base.ConstructName, QuestionText=base.QuestionText,
                CorrectAnswerText=base.CorrectAnswerText, OtherAnswerTexts=options_of(base),
                BaseQuestionId=base.QuestionId)


def closed_question(base) -> bool:
    """Whether a real question's four answers are a closed set of words or pictures ("Only Tom", "Acute",
    an image): none holds a number or LaTeX, so a new wrong answer unlike all four hardly exists."""
    answers = [base.CorrectAnswerText, *options_of(base)]
    return not any(_MATHS.search(a) and not a.lstrip().startswith("![") for a in answers)


def distractor_rules(answer: str, correct: str, options: list[str]) -> str | None:
    """Why a new wrong answer is unusable, or None."""
    longest = max(words(a) for a in [correct, *options])
    if words(answer) >= max(SENTENCE_MIN_WORDS, 2 * longest + 1):
        return "answer is a sentence, not an answer of the options' form"
    if same_answer(answer, correct):
        return "answer equals the correct answer"
    for option in options:
        if same_answer(answer, option):
            return "answer equals an existing option"
    return None


class DistractorWriter(TemplateStep):
    name = "distract"
    summary = "the question alone, the pupil's answer"  # --writer help
    role = "generator"
    columns: dict[str, str] = {"PupilWorking": "string", "CandidateAnswers": "list<string>",
                               "CandidateWorkings": "list<string>"}
    temperature = 0.7
    max_tokens = 120
    json_schema = WORKING_AND_ANSWER

    def __init__(self, answers: int = 1):
        super().__init__()
        if not 1 <= answers <= MAX_ANSWERS:
            raise ValueError(f"answers must be in 1..{MAX_ANSWERS}, got {answers}")
        self.answers = answers

    def prompt(self, target: Any) -> ChatRequest:
        base = target.base
        offered = [base.CorrectAnswerText, *options_of(base)] if closed_question(base) else []
        # distract.*.j2 leaves the correct answer out (see above); distract_solve.*.j2 shows it
        return self.request(target.seed, shots=target.shots, misconception=target.misconception_name,
                            question=base.QuestionText, correct_answer=base.CorrectAnswerText, offered=offered)

    def sample_prompt(self, item: Any) -> None:
        self.prompt(item.target)

    def parse(self, target: Any, text: str) -> Distractor:
        return parse_model(Distractor, text)

    def run(self, items: list[Any], ctx: Any) -> None:
        def rules(target: Any, d: Distractor) -> str | None:
            return distractor_rules(d.answer, target.base.CorrectAnswerText, options_of(target.base))

        n = self.answers
        draws = [dataclasses.replace(it.target, seed=it.target.seed + j * DRAW_STRIDE) for it in items for j in range(n)]
        outcomes = ctx.ask(self, draws, check=rules)
        for i, it in enumerate(items):
            mine = outcomes[n * i: n * i + n]
            it.row.update(base_columns(it.target.base), Attempts=sum(o.attempts for o in mine))
            chosen: list[Distractor] = []
            for out in mine:
                if out.ok and not any(same_answer(out.value.answer, c.answer) for c in chosen):
                    chosen.append(out.value)
            out = mine[0]
            if chosen:
                it.row.update(IncorrectAnswerText=chosen[0].answer, PupilWorking=chosen[0].working)
            elif out.value is not None:
                it.row.update(IncorrectAnswerText=out.value.answer, PupilWorking=out.value.working)
            if n > 1:
                it.row.update(CandidateAnswers=[c.answer for c in chosen], CandidateWorkings=[c.working for c in chosen])
            if not chosen:
                it.reject = ctx.reject("rules" if out.failed_check else self.name, out.error, out.raw)


SOLVE_FIRST = {
    "type": "object",
    "properties": {"solution": {"type": "string", "maxLength": MAX_WORKING_CHARS},
                   "pupil_working": {"type": "string", "maxLength": MAX_WORKING_CHARS},
                   "answer": {"type": "string"}},
    "required": ["solution", "pupil_working", "answer"],
    "additionalProperties": False,
}


class SolveFirstWriter(DistractorWriter):
    """Stage ``distract`` with ``--writer solve-first`` (the 2nd-place team's order): shown the question and its
    correct answer, the model solves it, finds the step the misconception changes, redoes it from there as the
    pupil and ends with the pupil's answer (``prompts/distract_solve.*.j2``).  The same rules as the direct
    writer; the pupil's working is the row's ``PupilWorking``."""

    name = "distract_solve"
    summary = ("shown the correct answer too, the model solves the question, then redoes the step the misconception "
               "changes and gives the pupil's answer")
    max_tokens = 260
    json_schema = SOLVE_FIRST

    def parse(self, target: Any, text: str) -> Distractor:
        answer = parse_json_object(text)
        try:
            return Distractor.model_validate({"working": answer.get("pupil_working") or "",
                                              "answer": answer.get("answer") or ""})
        except ValidationError as e:
            raise ParseError(validation_reason(e)) from None


# --writer NAME (distractor mode): the help comes from each class's summary; a new writer is one entry here
WRITERS = {"direct": DistractorWriter, "solve-first": SolveFirstWriter}
DEFAULT_WRITER = "direct"


class WorkingAsRationale(Stage):
    """Stage ``working`` (distractor mode, ``--rationale working``): the pupil's working the distractor writer
    gave becomes the row's ``Rationale``; no LLM call."""

    name = "working"

    def run(self, items: list[Any], ctx: Any) -> None:
        for it in items:
            it.row["Rationale"] = it.row.get("PupilWorking") or ""
