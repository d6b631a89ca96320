"""The listwise reranker: K lettered candidates in one prompt, every letter's probability from one forward pass.

Prompt (``prompts/rerank_listwise.*.j2``): subject, construct, question, correct and wrong answer (and the
rationale where the row has one and it is asked for), then K candidate misconceptions lettered A, B, ...,
ending at the assistant's first token.  A candidate's score in that prompt is the log-probability of its
letter, renormalised over the K letters.  This is how the competition's winners reranked (5th place: 52
letters in one pass; 1st and 2nd: the same prompt with the list reversed, scores averaged).

``Windows``: more candidates than fit one prompt go in windows of ``size`` (stride ``stride``; the last
window is moved back to end at the last candidate), each also in reversed order when ``reverse``; a
candidate's score is the mean of its log-probabilities over every prompt it appears in.

Two scorers behind one ``score(row, names) -> list[float]``:

- ``ModelScorer``: a transformers model in this process (a base zero-shot, or a trained adapter), one
  left-padded batch of a row's prompts, the letters' logits at the last position;
- ``BackendScorer``: any served model through ``llm.Backend`` (llama.cpp's server, ``vllm serve``, an
  API; in-process vLLM), ``max_tokens=1`` with ``top_logprobs``; the backend's retries, request cache
  and accounting apply.  Letters missing from the top list get ``FLOOR_LOGPROB``; a server that gives no
  logprobs gets probability 1 for the letter it wrote.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm.parsing import LETTERS, ParseError, letter_probabilities
from rankers import ModelError
from rankers.texts import clip, field

DEFAULT_WINDOW = 8
MAX_SERVED_WINDOW = 20  # top_logprobs: the OpenAI API's maximum (and vLLM's default max_logprobs)
QUESTION_CHARS = 400
NAME_CHARS = 160
FLOOR_LOGPROB = math.log(1e-6)  # a letter the server did not list among its top logprobs
TEMPLATE = "rerank_listwise"


@dataclass(frozen=True)
class Windows:
    size: int = DEFAULT_WINDOW
    stride: int | None = None  # None: the size (windows side by side)
    reverse: bool = True  # each window also in reversed order, scores averaged (cancels position bias)

    def __post_init__(self) -> None:
        if not 2 <= self.size <= len(LETTERS):
            raise ModelError(f"listwise window: {self.size} candidates (choose 2..{len(LETTERS)}, one letter each)")
        if self.stride is not None and not 1 <= self.stride <= self.size:
            raise ModelError(f"listwise stride: {self.stride} (choose 1..{self.size}, the window)")

    def plan(self, n: int) -> list[list[int]]:
        """The prompts for n candidates: each a list of candidate indexes in the order shown."""
        if n == 0:
            return []
        size = min(self.size, n)
        stride = min(self.stride or size, size)
        starts = list(range(0, n - size + 1, stride))
        if starts[-1] + size < n:
            starts.append(n - size)
        prompts = []
        for s in starts:
            window = list(range(s, s + size))
            prompts.append(window)
            if self.reverse:
                prompts.append(window[::-1])
        return prompts

    def record(self) -> dict:
        return {"size": self.size, "stride": self.stride, "reverse": self.reverse}


def combine(n: int, prompts: Sequence[Sequence[int]], logprobs: Sequence[Sequence[float]]) -> list[float]:
    """Each candidate's mean log-probability over the prompts it appears in."""
    total, count = [0.0] * n, [0] * n
    for order, values in zip(prompts, logprobs):
        for index, value in zip(order, values):
            total[index] += value
            count[index] += 1
    return [t / c if c else FLOOR_LOGPROB for t, c in zip(total, count)]


def render(row: Any, names: Sequence[str], with_rationale: bool = False,
           question_chars: int = QUESTION_CHARS) -> tuple[str, str]:
    import prompts

    return prompts.load(TEMPLATE).render(
        subject=field(row, "SubjectName"), construct=field(row, "ConstructName"),
        question=clip(field(row, "QuestionText"), question_chars), correct_answer=field(row, "CorrectAnswerText"),
        wrong_answer=field(row, "IncorrectAnswerText"),
        rationale=clip(field(row, "Rationale"), 400) if with_rationale else "",
        candidates=[(LETTERS[i], clip(name, NAME_CHARS)) for i, name in enumerate(names)])


def template_version() -> str:
    import prompts

    return prompts.load(TEMPLATE).version


def letter_ids(tokenizer, k: int = len(LETTERS)) -> list[int]:
    ids = []
    for letter in LETTERS[:k]:
        tokens = tokenizer.encode(letter, add_special_tokens=False)
        if len(tokens) != 1:
            raise ModelError(f"listwise reranker base: {letter!r} is not a single token for its tokenizer")
        ids.append(tokens[0])
    return ids


class ModelScorer:
    """Listwise scores from a transformers causal LM (zero-shot base or trained adapter) in this process."""

    def __init__(self, model, tokenizer, windows: Windows = Windows(), max_tokens: int = 768,
                 with_rationale: bool = False):
        self.model, self.tokenizer, self.windows = model, tokenizer, windows
        self.max_tokens, self.with_rationale = max_tokens, with_rationale
        self.letters = letter_ids(tokenizer)

    def prompt_ids(self, row: Any, names: Sequence[str]) -> list[int]:
        """Token ids of the prompt, the question shortened (then the names) until it fits ``max_tokens``."""
        question_chars, name_chars = QUESTION_CHARS, NAME_CHARS
        while True:
            system, user = render(row, [clip(n, name_chars) for n in names], self.with_rationale, question_chars)
            ids = chat_ids(self.tokenizer, system, user)
            if len(ids) <= self.max_tokens or (question_chars <= 60 and name_chars <= 40):
                return ids
            question_chars, name_chars = max(60, question_chars // 2), max(40, name_chars - 40)

    def logprobs(self, inputs: list[list[int]], sizes: list[int]):
        """Per prompt, the log-probabilities of its first ``size`` letters, renormalised over them."""
        import torch

        from rankers.reranker import shared_prefix_logits

        with torch.no_grad():
            last = shared_prefix_logits(self.model, inputs, self.tokenizer.pad_token_id)
        out = []
        for row, size in zip(last, sizes):
            out.append(torch.log_softmax(row[self.letters[:size]], dim=-1).tolist())
        return out

    def score(self, row: Any, names: Sequence[str]) -> list[float]:
        if not names:
            return []
        plan = self.windows.plan(len(names))
        inputs = [self.prompt_ids(row, [names[i] for i in order]) for order in plan]
        return combine(len(names), plan, self.logprobs(inputs, [len(o) for o in plan]))


def chat_ids(tokenizer, system: str, user: str) -> list[int]:
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                             tokenize=False, add_generation_prompt=True)
    else:
        text = f"{system}\n\n{user}\nAnswer:"
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class BackendScorer:
    """Listwise scores from any served model through ``llm.Backend``: one token, its top logprobs."""

    def __init__(self, backend, windows: Windows = Windows(), usage=None, with_rationale: bool = False):
        if windows.size > MAX_SERVED_WINDOW:
            raise ModelError(f"listwise window {windows.size}: a served model lists at most {MAX_SERVED_WINDOW} "
                             "top logprobs (OpenAI API, vLLM's default); use --rerank-window 20 or less")
        self.backend, self.windows, self.usage, self.with_rationale = backend, windows, usage, with_rationale
        self.version = template_version()
        self.unreadable = 0  # answers with neither logprobs nor a letter: every candidate got the floor

    def requests(self, row: Any, names: Sequence[str], plan: list[list[int]]):
        from llm.base import ChatRequest

        out = []
        for order in plan:
            system, user = render(row, [names[i] for i in order], self.with_rationale)
            out.append(ChatRequest(messages=(("system", system), ("user", user)), max_tokens=1, temperature=0.0,
                                   seed=0, prompt_version=f"{TEMPLATE}:{self.version}", logprobs=len(order)))
        return out

    def score(self, row: Any, names: Sequence[str]) -> list[float]:
        if not names:
            return []
        plan = self.windows.plan(len(names))
        logprobs: list[list[float]] = [[] for _ in plan]
        for i, response in self.backend.chat_many(self.requests(row, names, plan)):
            if self.usage is not None:
                self.usage.add(response, schema=False)
            try:
                probs = letter_probabilities(response, len(plan[i]))
            except ParseError:
                self.unreadable += 1
                probs = [0.0] * len(plan[i])
            logprobs[i] = [math.log(p) if p > 1e-6 else FLOOR_LOGPROB for p in probs]
        return combine(len(names), plan, logprobs)
