"""The plan of a run: every item to make, in cluster order (requests sharing a prefix stay adjacent).

An item is the ``k``-th for a target misconception.  Question mode makes ``--per-misconception`` new
questions per target.  Distractor mode writes one new wrong answer per *base question* (pairing mode
labels the base question itself with the target, no LLM): real questions
whose construct fits the target, chosen from the pool the shots come from (the real rows of the
target's cluster and of the ``POOL_NEIGHBOURS`` misconceptions nearest to it), ranked by the cosine
similarity of their construct name to the target's name, those whose answers are a closed set of words
or pictures last (a new wrong answer unlike their four hardly exists), questions not yet used by an
earlier target of the cluster first (so a cluster's items spread over its questions); the ``k``-th item
takes the ``k``-th base.
Questions with a row of the hidden fold (``--hide-fold``) are never bases.

``ItemKey`` names what was generated (misconception, item index, seed, generator model, base question, the
mode or writer where it is not the default's, hidden fold); a re-run skips an item stored with the same key and the same check settings.
"""
from __future__ import annotations

import hashlib

import numpy as np

from eedi import Pair
from embeddings import nearest
from factory.config import SynthConfig
from factory.modes import MODES
from factory.world import ConfigError, World
from generators import ShotPicker, Target
from generators.distractor import closed_question

POOL_NEIGHBOURS = 20  # nearest misconceptions (with real rows) whose questions may be bases


def item_seed(seed: int, misconception_id: int, item_index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{misconception_id}:{item_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def item_key(target: Target, generator: str, hide_fold=None, tag: str = "") -> str:
    """Identifies what an item generated, across runs (``tag``: ``SynthConfig.key_tag``, the mode or writer)."""
    key = f"{target.misconception_id}:{target.item_index}:{target.seed}:{generator}"
    if target.base is not None:
        key += f":distractor={target.base.QuestionId}"
    if tag:
        key += f":{tag}"
    return f"{key}:hide={hide_fold}" if hide_fold else key


class BasePicker:
    """Real questions for distractor mode, ranked by how well their construct fits a target misconception."""

    def __init__(self, world: World):
        self.world = world
        self.row_of = {m: i for i, m in enumerate(world.ids)}
        self.questions: dict[str, Pair] = {}  # QuestionId -> one of its pairs (all share the question)
        self.by_misconception: dict[int, list[str]] = {}
        for p in sorted(world.data.train_pairs, key=lambda p: (p.QuestionId, p.Answer)):
            if p.QuestionId in world.hidden_questions:
                continue
            self.questions.setdefault(p.QuestionId, p)
            qids = self.by_misconception.setdefault(p.MisconceptionId, [])
            if p.QuestionId not in qids:
                qids.append(p.QuestionId)
        self.closed = {q for q, p in self.questions.items() if closed_question(p)}  # bases of last resort
        constructs = sorted({p.ConstructName for p in self.questions.values()})
        vectors = world.embedder.encode_cached(constructs, "constructs")
        self.construct_vector = dict(zip(constructs, vectors))

    def pick(self, misconception_id: int, members: tuple[int, ...], n: int, used: set[str] = frozenset()) -> list[Pair]:
        """The n best-fitting base questions, those not in ``used`` (by other targets of the cluster) first."""
        ranked = self.ranked(misconception_id, members)
        fresh = [p for p in ranked if p.QuestionId not in used]
        return (fresh + [p for p in ranked if p.QuestionId in used])[:n]

    def ranked(self, misconception_id: int, members: tuple[int, ...]) -> list[Pair]:
        w = self.world
        own = self.row_of[misconception_id]
        with_rows = [m for m in self.by_misconception if m not in members]
        rows = [self.row_of[m] for m in with_rows]
        near = [with_rows[i] for i in nearest(w.vectors[rows], w.vectors[own], POOL_NEIGHBOURS)] if rows else []
        pool = list(dict.fromkeys(q for m in (*members, *near) for q in self.by_misconception.get(m, ())))
        if not pool:
            return []
        sims = np.array([self.construct_vector[self.questions[q].ConstructName] @ w.vectors[own] for q in pool])
        closed = np.array([q in self.closed for q in pool])
        order = np.lexsort((np.arange(len(pool)), -sims, closed))
        return [self.questions[pool[i]] for i in order]


def plan(world: World, config: SynthConfig, wanted: set[int]) -> list[Target]:
    """Every target item of the chosen clusters, in cluster order."""
    members = world.clustering.members
    if config.clusters is None:
        chosen = [cid for cid, m in members.items() if wanted.intersection(m)]
    else:
        unknown = [c for c in config.clusters if c not in members]
        if unknown:
            raise ConfigError(f"--cluster {unknown[0]}: no such cluster (ids 0-{len(members) - 1}; see --list-clusters)")
        chosen = sorted(set(config.clusters))
    picker = ShotPicker(world.data.misconceptions, world.data.train_pairs, world.ids, world.vectors)
    bases = BasePicker(world) if MODES[config.mode].bases else None
    names = world.data.misconceptions
    per_target = config.effective_per_misconception()
    targets = []
    for cid in chosen:
        shots = picker.pick(members[cid], config.shots)
        used: set[str] = set()  # base questions of the cluster's earlier targets: spread the items over questions
        for mid in members[cid]:
            if mid not in wanted:
                continue
            if bases is None:
                for k in range(per_target):
                    targets.append(Target(mid, names[mid], cid, k, item_seed(config.seed, mid, k), shots))
            else:
                for k, base in enumerate(bases.pick(mid, members[cid], per_target, used)):
                    used.add(base.QuestionId)
                    targets.append(Target(mid, names[mid], cid, k, item_seed(config.seed, mid, k), shots, base))
    return targets
