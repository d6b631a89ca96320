"""Stage ``choose`` (distractor mode, ``--answers N`` above 1): of the writer's N answers to an item, keep the one
the pick judge finds likeliest for the target misconception.

The writer (``generators.distractor``) draws N answers an item and keeps the distinct ones that pass its rules
(``CandidateAnswers``, ``CandidateWorkings``). Each is scored as the pick check scores a row (``judges.pick``:
the target among K lettered misconceptions, both orders of each candidate rule, the target's letter
probability averaged), and the one with the highest target probability becomes the row's
``IncorrectAnswerText`` and ``PupilWorking``, its ``PickProbability`` and ``PickRank`` recorded. It rejects
nothing: the pick check (``--checks ...,pick``) still decides whether the chosen answer is good enough, and
re-asks nothing, since its prompts are the ones answered here. An item with one distinct answer asks no judge.
The pick check's flags (``--pick-k``, ``--pick-candidates``) set it. The 2nd-place team's lever: several
answers a question, the best kept by a judge's probability.
"""
from __future__ import annotations

from typing import Any

from judges.pick import PickMisconception
from llm.stage import Stage


class ChooseAnswer(Stage):
    name = "choose"
    role = "judge"
    columns: dict[str, str] = {}  # it writes the writer's and the pick check's columns
    max_attempts = 1

    def __init__(self, pick: PickMisconception):
        self.pick = pick
        self.version = pick.version
        self.logprobs = pick.logprobs

    def settings(self) -> dict:
        return self.pick.settings() | {"min_probability": None}

    def sample_prompt(self, item: Any) -> None:
        self.pick.sample_prompt(item)

    def run(self, items: list[Any], ctx: Any) -> None:
        trials, owners = [], []
        for i, it in enumerate(items):
            candidates = list(zip(it.row.get("CandidateAnswers") or [], it.row.get("CandidateWorkings") or []))
            if len(candidates) > 1:
                for answer, working in candidates:
                    trials.append(type(it)(it.target, {**it.row, "IncorrectAnswerText": answer,
                                                       "PupilWorking": working}))
                    owners.append(i)
        scored = self.pick.score(trials, ctx, ctx.names, stage=self.name) if trials else []
        best: dict[int, tuple[float, int, dict]] = {}
        for owner, trial, (probs, _) in zip(owners, trials, scored):
            if probs is None:  # unreadable: this answer is not chosen
                continue
            p, rank, _ = self.pick.verdict(probs, trial.row["MisconceptionId"])
            if owner not in best or p > best[owner][0]:
                best[owner] = (p, rank, trial.row)
        for owner, (p, rank, row) in best.items():
            items[owner].row.update(IncorrectAnswerText=row["IncorrectAnswerText"], PupilWorking=row["PupilWorking"],
                                    PickProbability=round(p, 4), PickRank=rank)
