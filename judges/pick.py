"""Stage ``pick``: which of K lettered misconceptions explains the targeted wrong answer?

A check a small model can do, instead of a 0-10 opinion: the item (question, correct answer, targeted
wrong answer) and K candidate misconceptions in a seeded order, lettered A, B, ...: the target and K-1
others, ``candidates``: the names nearest to the target's by embedding ("nearest"), the names the embedder
ranks highest for the item's own query, built as the retriever trainer builds it ("retrieved": what else
could explain this wrong answer), or half of either and half random ("mixed", "retrieved-mixed"); the
answer is one token. The score of a candidate is the probability of its letter at the first answer token
(``logprobs``/``top_logprobs`` on OpenAI-compatible servers, llama.cpp's included; vLLM's logprobs),
renormalised over the K letters, and averaged over the order and its reverse, which cancels position bias
(1st and 2nd place in the competition did the same for their rerankers). Where a server returns no
logprobs, the letter it wrote counts as probability 1. Rules joined by "+" (``mixed+retrieved-mixed``)
ask both orders once per rule, and average each candidate's probability over all those prompts (0 where
it was not shown).

The item is kept when the target's averaged probability is the highest (``min_probability`` None) or at
least ``min_probability``. ``PickProbability`` and ``PickRank`` (1 = the judge's first choice) are recorded.
"""
from __future__ import annotations

import random
from typing import Any

from llm.stage import Option, TemplateStep, number
from llm.base import ChatRequest, ChatResponse
from llm.parsing import LETTERS, ParseError, letter_probabilities  # noqa: F401 - re-exported
from rankers.texts import query_text

TOP_LOGPROBS = 20  # the OpenAI API's maximum
# where the K-1 others come from: the names nearest to the target's, or the names a retriever ranks highest
# for the item itself; "mixed" variants take half of them that way and half at random
CANDIDATE_RULES = ("nearest", "mixed", "retrieved", "retrieved-mixed")
# On 48 real rows with the 1.5B (docs/results/2026-12-01-checks-on-real-rows.md): AUC against the nearest /
# a random misconception 0.61 / 0.83 with both rules averaged, 0.63 / 0.70 with mixed, 0.56 / 0.82 with
# retrieved-mixed; 4 prompts an item.
DEFAULT_PICK_CANDIDATES = "mixed+retrieved-mixed"


def candidate_rules(candidates: str) -> list[str]:
    """The rules of a ``--pick-candidates`` value: one rule, or several joined by "+"."""
    rules = candidates.split("+")
    bad = next((r for r in rules if r not in CANDIDATE_RULES), None)
    if bad is not None or len(set(rules)) < len(rules):
        raise ValueError(f"candidates must be one of {', '.join(CANDIDATE_RULES)}, or several joined by '+' "
                         f"(each once), got {candidates!r}")
    return rules


class PickMisconception(TemplateStep):
    name = "pick"
    summary = "which of K lettered misconceptions explains the wrong answer"
    role = "judge"
    columns = {"PickProbability": "float64", "PickRank": "int64"}
    temperature = 0.0
    max_tokens = 1
    logprobs = TOP_LOGPROBS
    max_attempts = 1  # greedy: a retry would give the same answer
    needs = ("wrong_answer",)
    options = (
        Option("k", "--pick-k", "check pick: candidates shown, the target and K-1 others", 5,
               number(int, 2, len(LETTERS), why="the target and at least one other, one letter each"), "K"),
        Option("candidates", "--pick-candidates",
               "check pick: the others are the names nearest to the target's (nearest), the names the embedder ranks "
               "highest for the item itself (retrieved), or half of either and half random (mixed, retrieved-mixed); "
               "rules joined by + are each asked and the probabilities averaged", DEFAULT_PICK_CANDIDATES,
               lambda text: "+".join(candidate_rules(text)), "RULE"),
        Option("min_probability", "--pick-threshold",
               "check pick: keep when the target's probability is at least P (default: keep when the target is the "
               "judge's first choice)", None, number(float, 0, 1, low_open=True), "P"),
    )

    def __init__(self, k: int = 5, candidates: str = DEFAULT_PICK_CANDIDATES, min_probability: float | None = None):
        super().__init__()
        if k < 2 or k > len(LETTERS):
            raise ValueError(f"pick: K must be in 2..{len(LETTERS)}, got {k}")
        self.rules = candidate_rules(candidates)
        self.k, self.candidates, self.min_probability = k, candidates, min_probability

    def settings(self) -> dict:
        return {"k": self.k, "candidates": self.candidates, "min_probability": self.min_probability}

    def choose_candidates(self, row: dict, seed: int, ctx: Any, rule: str | None = None) -> list[int]:
        """The target and K-1 others by ``rule`` (default the first), in a seeded order."""
        rule = rule or self.rules[0]
        misconception_id = row["MisconceptionId"]
        others = self.k - 1
        near = (others + 1) // 2 if rule.endswith("mixed") else others
        if rule.startswith("retrieved"):
            chosen = ctx.retrieved_misconceptions(query_text(row), near, exclude=misconception_id)
        else:
            chosen = ctx.nearest_misconceptions(misconception_id, near)
        rng = random.Random(seed)
        pool = [m for m in ctx.ids if m != misconception_id and m not in chosen]
        chosen += rng.sample(pool, others - near)
        chosen.append(misconception_id)
        rng.shuffle(chosen)
        return chosen

    def sample_prompt(self, item: Any) -> None:
        self.prompt((item, [item.target.misconception_id], [item.target.misconception_name]))

    def prompt(self, row: tuple[Any, list[int], list[str]]) -> ChatRequest:
        item, _, names = row
        r = item.row
        return self.request(item.target.seed, question=r["QuestionText"], correct_answer=r["CorrectAnswerText"],
                            wrong_answer=r["IncorrectAnswerText"], candidates=list(zip(LETTERS, names)))

    def parse_response(self, row: tuple[Any, list[int], list[str]], response: ChatResponse) -> list[float]:
        return letter_probabilities(response, len(row[1]))

    def score(self, items: list[Any], ctx: Any, names: dict[int, str],
              stage: str | None = None) -> list[tuple[dict[int, float] | None, str]]:
        """Per item: candidate -> probability averaged over both orders of each rule's candidates (0 where not
        shown; None when unreadable), and a reason. ``stage``: the stage its requests are accounted under."""
        rows = []
        for it in items:
            for rule in self.rules:
                order = self.choose_candidates(it.row, it.target.seed, ctx, rule)
                for o in (order, order[::-1]):
                    rows.append((it, o, [names[m] for m in o]))
        outcomes = ctx.ask(self, rows, stage=stage)
        n = 2 * len(self.rules)  # prompts an item
        scored = []
        for i in range(len(items)):
            answers = outcomes[n * i: n * i + n]
            bad = next((o for o in answers if not o.ok), None)
            if bad is not None:
                scored.append((None, bad.error))
                continue
            probs: dict[int, float] = {}
            for (_, order, _), out in zip(rows[n * i: n * i + n], answers):
                for m, p in zip(order, out.value):
                    probs[m] = probs.get(m, 0.0) + p / n
            scored.append((probs, ""))
        return scored

    def verdict(self, probs: dict[int, float], target: int) -> tuple[float, int, bool]:
        p = probs[target]
        rank = 1 + sum(1 for m, q in probs.items() if m != target and q > p)
        keep = rank == 1 if self.min_probability is None else p >= self.min_probability
        return p, rank, keep

    def run(self, items: list[Any], ctx: Any) -> None:
        for it, (probs, error) in zip(items, self.score(items, ctx, ctx.names)):
            if probs is None:
                it.reject = ctx.reject(self.name, f"invalid pick output: {error}")
                continue
            p, rank, keep = self.verdict(probs, it.row["MisconceptionId"])
            it.row.update(PickProbability=round(p, 4), PickRank=rank)
            if keep:
                it.passed(self.name)
            else:
                why = "not the first choice" if self.min_probability is None else f"below {self.min_probability:g}"
                it.reject = ctx.reject(self.name, f"target misconception {why}: p {p:.2f}, rank {rank} of {len(probs)}")
