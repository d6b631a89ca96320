"""Rule checks run before the judge LLM: cheap, deterministic, no LLM.

- the four options are distinct (compared after lower-casing and removing
  whitespace and LaTeX delimiters);
- the targeted wrong answer differs from the correct one (implied by the first
  rule, reported on its own because it is the commonest failure);
- the question is not a near-duplicate of a real question or of an earlier
  kept synthetic one: cosine similarity of the question texts' embeddings at
  or above ``NEAR_DUPLICATE_THRESHOLD`` (0.95).  Measured with all-MiniLM-L6-v2:
  verbatim copies score 1.0; one question re-written with other numbers or
  another context scores 0.54-0.93 (five pairs); so the threshold rejects
  copies and keeps re-numbered variants, which are new items.
"""
from __future__ import annotations

import re

import numpy as np

from embeddings import Embedder
from generators.question import GeneratedQuestion

NEAR_DUPLICATE_THRESHOLD = 0.95
_NOISE = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$|\s+")


def normalise(answer: str) -> str:
    return _NOISE.sub("", answer).lower()


def check_options(item: GeneratedQuestion) -> str | None:
    """The reason the item fails the option rules, or None."""
    correct = normalise(item.correct_answer)
    if normalise(item.misconception_answer) == correct:
        return "targeted wrong answer equals the correct answer"
    options = [correct, normalise(item.misconception_answer), *map(normalise, item.other_wrong_answers)]
    if len(set(options)) < 4:
        return "options not distinct"
    return None


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
