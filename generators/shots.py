"""Choose the real examples (shots) shown to the generator for a cluster.

Order, fixed for given data and clustering:
1. pairs of the cluster's own misconceptions, taking one pair per misconception
   in turn (round-robin), misconceptions ordered by similarity to the cluster
   centroid, pairs of one misconception by (QuestionId, Answer);
2. then one pair each from the misconceptions nearest to the centroid by
   embedding, outside the cluster, nearest first;
until ``n`` shots.  Targets usually have no real rows, so step 2 is what fills
most prompts.
"""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from eedi import Pair
from embeddings import nearest
from generators.question import Shot


def shot_of(pair: Pair, misconception: str) -> Shot:
    answer = {
        "subject": pair.SubjectName,
        "construct": pair.ConstructName,
        "question": pair.QuestionText,
        "correct_answer": pair.CorrectAnswerText,
        "misconception_answer": pair.IncorrectAnswerText,
        "other_wrong_answers": list(pair.OtherAnswerTexts),
    }
    return Shot(key=pair.key, misconception=misconception, json=json.dumps(answer, ensure_ascii=False),
                question=pair.QuestionText, answer=pair.IncorrectAnswerText)


class ShotPicker:
    def __init__(self, misconceptions: dict[int, str], pairs: list[Pair], ids: list[int], vectors: np.ndarray):
        self.misconceptions = misconceptions
        self.ids, self.vectors = ids, vectors
        self.row_of = {mid: i for i, mid in enumerate(ids)}
        self.pairs_of: dict[int, list[Pair]] = defaultdict(list)
        for p in pairs:
            self.pairs_of[p.MisconceptionId].append(p)
        for plist in self.pairs_of.values():
            plist.sort(key=lambda p: (_numeric(p.QuestionId), p.Answer))

    def centroid(self, members: tuple[int, ...]) -> np.ndarray:
        c = self.vectors[[self.row_of[m] for m in members]].mean(axis=0)
        return c / (np.linalg.norm(c) or 1.0)

    def pick(self, members: tuple[int, ...], n: int) -> tuple[Shot, ...]:
        if n <= 0:
            return ()
        centre = self.centroid(members)
        member_rows = [self.row_of[m] for m in members]
        ranked = nearest(self.vectors[member_rows], centre, len(member_rows))
        queues = [list(self.pairs_of.get(members[i], [])) for i in ranked]
        chosen: list[Pair] = []
        while len(chosen) < n and any(queues):
            for q in queues:
                if q and len(chosen) < n:
                    chosen.append(q.pop(0))
        if len(chosen) < n:
            inside = set(member_rows)
            for row in nearest(self.vectors, centre, len(self.ids), exclude=inside):
                plist = self.pairs_of.get(self.ids[row])
                if plist:
                    chosen.append(plist[0])
                    if len(chosen) == n:
                        break
        return tuple(shot_of(p, self.misconceptions[p.MisconceptionId]) for p in chosen)


def _numeric(qid: str) -> tuple[int, str]:
    return (int(qid), "") if qid.isdigit() else (1 << 62, qid)
