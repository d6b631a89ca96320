"""The near-duplicate rule: cheap, deterministic, no LLM (the option rules are ``eedi.answers.check_options``).

- the question is not a near-duplicate of a real question or of an earlier
  kept synthetic one: cosine similarity of the question texts' embeddings at
  or above ``NEAR_DUPLICATE_THRESHOLD`` (0.95).  Measured with all-MiniLM-L6-v2:
  verbatim copies score 1.0; one question re-written with other numbers or
  another context scores 0.54-0.93 (five pairs); so the threshold rejects
  copies and keeps re-numbered variants, which are new items.
"""
from __future__ import annotations

import numpy as np

from eedi.answers import normalise
from embeddings import Embedder
from llm.stage import Stage

NEAR_DUPLICATE_THRESHOLD = 0.95


class NearDuplicateIndex:
    """Question texts seen so far (real and kept synthetic); finds the most similar one."""

    def __init__(self, embedder: Embedder, threshold: float = NEAR_DUPLICATE_THRESHOLD):
        self.embedder, self.threshold = embedder, threshold
        self._keys: list[str] = []
        self._vectors = np.zeros((0, embedder.dim), dtype=np.float32)

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        self._keys.extend(keys)
        self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32)])

    def add_texts(self, keys: list[str], texts: list[str], cache_tag: str | None = None) -> None:
        vectors = (self.embedder.encode_cached(texts, cache_tag) if cache_tag else self.embedder.encode(texts))
        self.add(keys, vectors)

    def embed(self, text: str) -> np.ndarray:
        return self.embedder.encode([text])[0]

    def most_similar(self, vector: np.ndarray) -> tuple[float, str | None]:
        if not self._keys:
            return 0.0, None
        sims = self._vectors @ vector
        i = int(sims.argmax())
        return float(sims[i]), self._keys[i]

    def check(self, vector: np.ndarray) -> str | None:
        sim, key = self.most_similar(vector)
        if sim >= self.threshold:
            return f"near-duplicate: cosine {sim:.3f} to {key}"
        return None


class NearDuplicates(Stage):
    """Stage ``near-duplicate`` (question mode, last): not a near-copy of a kept synthetic question, in the
    store or earlier in this run. Items are checked in plan order, so which one survives does not depend
    on which answers were computed in which run."""

    name = "near-duplicate"
    ordered = True  # needs every earlier item of the run: the engine runs it in plan order, in one process

    def __init__(self, threshold: float = NEAR_DUPLICATE_THRESHOLD):
        self.threshold = threshold

    def settings(self) -> dict:
        return {"threshold": self.threshold}

    def setup(self, ctx) -> None:
        self.index = NearDuplicateIndex(ctx.embedder, self.threshold)
        if ctx.kept is not None and ctx.kept.num_rows:
            self.index.add_texts(ctx.kept.column("QuestionId").to_pylist(), ctx.kept.column("QuestionText").to_pylist())

    def run(self, items: list, ctx) -> None:
        for it in items:
            vector = ctx.embed(it.row["QuestionText"])
            duplicate = self.index.check(vector)
            if duplicate is None:
                self.index.add([it.row["QuestionId"]], vector[None, :])
                it.passed(self.name)
            else:
                it.reject = ctx.reject("rules", duplicate)  # the label rows carried before stages had names


class RepeatedDistractors(Stage):
    """Stage ``repeat`` (distractor mode, last): the same new wrong answer to the same real question is kept
    once (in the store or earlier in this run, in plan order), whichever misconception it was written for."""

    name = "repeat"
    ordered = True  # needs every earlier item of the run: the engine runs it in plan order, in one process

    def setup(self, ctx) -> None:
        self.seen: dict[tuple[str, str], str] = {}
        kept = ctx.kept
        if kept is not None and kept.num_rows and "BaseQuestionId" in kept.column_names:
            for qid, base, answer in zip(kept.column("QuestionId").to_pylist(), kept.column("BaseQuestionId").to_pylist(),
                                         kept.column("IncorrectAnswerText").to_pylist()):
                if base:
                    self.seen.setdefault((base, normalise(answer or "")), qid)

    def run(self, items: list, ctx) -> None:
        for it in items:
            key = (it.row["BaseQuestionId"], normalise(it.row["IncorrectAnswerText"]))
            if key in self.seen:
                it.reject = ctx.reject(self.name, "same wrong answer to the same question as a kept row: "
                                                  f"question {key[0]}, {self.seen[key]}")
            else:
                self.seen[key] = it.row["QuestionId"]
                it.passed(self.name)
