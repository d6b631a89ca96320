"""Rank every misconception for (question, wrong answer) rows: retrieve, rerank, boost the unseen.

- **Retriever**: a sentence-transformers folder (``pipelines.train``'s ``retriever/``, or the
  embedded all-MiniLM-L6-v2 zero-shot).  The misconception names are encoded once per
  retriever and cached (``<cache>/index/``), keyed by the retriever's files and the names.
- **Reranker** (optional): an LLM scoring the retriever's top ``top_n``: pointwise, one candidate
  per forward pass (``rankers.reranker``), or listwise, K lettered candidates per pass
  (``rankers.listwise``); a trained adapter folder or a base model zero-shot in this process, or
  (listwise) any served model through ``llm.Backend`` (``ServedReranker``).  The reranked
  candidates come first, in the reranker's order; the rest keep the retriever's order.
- **Ensembles** (``Ensemble``): several retrievers as one first stage, each ranking its top ``depth``,
  combined by a weighted average of ranks (a candidate missing from a list counts as rank depth + 1)
  or of scores (missing: that list's lowest score); ``contribution`` counts, per member, how much
  of the final top k came from its own top k.
- **Unseen boost**: ranking by p(m) ∝ exp(score / T), the probability of every misconception
  with no real training row is multiplied by ``boost``, i.e. T·ln(boost) is added to its score
  (T = 1/20 for the retriever's cosine, the scale its loss trains with; T = 1 for the reranker's
  logit difference).  The boost applies before the top k is cut.

Rows go through in batches: memory is one batch of queries × all names, whatever the input size.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankers import ModelError
from rankers.card import CARD_FILE, has_card
from rankers.documents import documents, folder_cards
from rankers.retriever import Index, load_encoder
from rankers.texts import query_text
from store.files import open_atomic

RETRIEVER_TEMPERATURE = 1 / 20  # MultipleNegativesRankingLoss's default scale is 20
RERANKER_TEMPERATURE = 1.0
# the retriever's weight in a reranked order (fused, measured:
# docs/results/2026-12-02-listwise-pointwise-fused-ensembles.md)
DEFAULT_FUSE = 1.0
SKIP_IN_FINGERPRINT = {"README.md", CARD_FILE}


def fingerprint(folder: Path) -> str:
    """sha256 over a model folder's files (names and bytes), cards excepted."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in SKIP_IN_FINGERPRINT):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


class Retriever:
    """A bi-encoder and the misconception names it has encoded (cached per retriever)."""

    def __init__(self, folder: str | Path | None, misconceptions: dict[int, str], cache: Path | None = None,
                 batch_size: int = 64, cards: dict[int, str] | None = None):
        """``cards``: appended to the names (``rankers.documents``); None: the cards the folder was trained
        with, if any."""
        model, self.kind, self.path = load_encoder(folder)
        model.eval()
        if cards is None:
            cards, _ = folder_cards(folder)
        self.cards = len(cards or {})  # how many names carry a card
        misconceptions = documents(misconceptions, cards)
        vectors = None
        names_digest = hashlib.sha256("\0".join(f"{m}:{misconceptions[m]}" for m in sorted(misconceptions)).encode())
        self.cache_file = None
        if cache is not None:
            key = hashlib.sha256((fingerprint(self.path) + names_digest.hexdigest()).encode()).hexdigest()[:24]
            self.cache_file = cache / "index" / f"{key}.npy"
            if self.cache_file.is_file():
                loaded = np.load(self.cache_file)
                if loaded.shape[0] == len(misconceptions):
                    vectors = loaded
        self.cached = vectors is not None
        self.index = Index(model, misconceptions, batch_size, vectors)
        if self.cache_file is not None and not self.cached:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with open_atomic(self.cache_file, "wb") as f:
                np.save(f, self.index.vectors)

    @property
    def ids(self) -> list[int]:
        return self.index.ids

    def bonus(self, unseen: Iterable[int], boost: float) -> np.ndarray | None:
        """The additive score bonus of ``boost`` for the ``unseen`` misconceptions (None for no boost)."""
        if boost == 1.0:
            return None
        bonus = np.zeros(len(self.index.ids), dtype=np.float32)
        rows = [self.index.row_of[m] for m in unseen if m in self.index.row_of]
        bonus[rows] = RETRIEVER_TEMPERATURE * math.log(boost)
        return bonus

    def encode(self, rows: Sequence[Any]) -> np.ndarray:
        return self.index.encode([query_text(r) for r in rows])

    def search(self, rows: Sequence[Any] | np.ndarray, k: int,
               bonus: np.ndarray | None = None) -> list[tuple[list[int], list[float]]]:
        """Top-k (ids, scores) for rows, or for their vectors from ``encode``."""
        queries = rows if isinstance(rows, np.ndarray) else [query_text(r) for r in rows]
        return self.index.search(queries, k, bonus=bonus)


ENSEMBLES = ("rank", "score")


class Ensemble:
    """Several retrievers as one first stage (the ``Retriever`` interface: ``bonus``, ``search``)."""

    def __init__(self, members: Sequence[Retriever], how: str = "rank", weights: Sequence[float] | None = None,
                 depth: int = 100):
        if how not in ENSEMBLES:
            raise ModelError(f"ensemble {how!r}: expected one of {', '.join(ENSEMBLES)}")
        weights = list(weights) if weights else [1.0] * len(members)
        if len(weights) != len(members) or any(w <= 0 for w in weights):
            raise ModelError(f"--ensemble-weights: {len(members)} positive numbers expected (one per --retriever), "
                             f"got {weights}")
        self.members, self.how, self.depth = list(members), how, depth
        self.weights = [w / sum(weights) for w in weights]
        self.contribution = [0] * len(members)  # of the final top-k ids, how many were in each member's top k
        self.agreement = [0] * len(members)  # rows where the member's first candidate is the ensemble's
        self.rows = 0

    @property
    def ids(self) -> list[int]:
        return self.members[0].ids

    def bonus(self, unseen: Iterable[int], boost: float) -> list[np.ndarray | None]:
        unseen = list(unseen)
        return [m.bonus(unseen, boost) for m in self.members]

    def search(self, rows: Sequence[Any], k: int, bonus=None) -> list[tuple[list[int], list[float]]]:
        bonuses = bonus or [None] * len(self.members)
        depth = max(k, self.depth)
        lists = [m.search(rows, depth, b) for m, b in zip(self.members, bonuses)]
        out = []
        for r in range(len(rows)):
            combined: dict[int, float] = {}
            per_member = [lists[i][r] for i in range(len(self.members))]
            candidates = {m for ids, _ in per_member for m in ids}
            for w, (ids, scores) in zip(self.weights, per_member):
                if self.how == "rank":
                    position = {m: j + 1 for j, m in enumerate(ids)}
                    for m in candidates:
                        combined[m] = combined.get(m, 0.0) - w * position.get(m, depth + 1)
                else:
                    value = dict(zip(ids, scores))
                    floor = min(scores) if scores else 0.0
                    for m in candidates:
                        combined[m] = combined.get(m, 0.0) + w * value.get(m, floor)
            ranked = sorted(candidates, key=lambda m: (-combined[m], m))[:k]
            self.rows += 1
            for i, (ids, _) in enumerate(per_member):
                self.contribution[i] += len(set(ids[:k]) & set(ranked))
                self.agreement[i] += bool(ids) and bool(ranked) and ids[0] == ranked[0]
            out.append((ranked, [combined[m] for m in ranked]))
        return out


KINDS = ("pointwise", "listwise")


class Reranker:
    """Scores (row, misconception) with an LLM in this process: a trained adapter folder, or a base model
    zero-shot; ``kind`` pointwise (Yes/No per candidate) or listwise (lettered candidates per prompt).
    A trained folder's kind is its card's; asking for the other kind is a ModelError."""

    def __init__(self, spec: str | Path, max_tokens: int = 192, kind: str | None = None, windows=None):
        from rankers.card import read_card
        from rankers.reranker import answer_ids, load_model, load_reranker, load_tokenizer, resolve_base

        folder = Path(spec)
        if has_card(folder):
            trained_kind = read_card(folder).get("scoring", "pointwise")
            if kind is not None and kind != trained_kind:
                raise ModelError(f"{folder}: a {trained_kind} reranker; it cannot rerank {kind} "
                                 f"(use --reranker-kind {trained_kind})")
            kind = trained_kind
            self.model, self.tokenizer = load_reranker(folder)
            self.name, self.trained = f"{folder} (trained, {kind})", True
        elif folder.is_dir() and (folder / "adapter_config.json").is_file():
            raise ModelError(f"{folder}: a LoRA adapter without its training card; cannot tell its base model")
        else:
            kind = kind or "pointwise"
            base = resolve_base(str(spec))
            self.tokenizer = load_tokenizer(base)
            self.model, _ = load_model(base, quantize_4bit=False)
            self.name, self.trained = f"{base.name} (zero-shot, {kind})", False
        if kind not in KINDS:
            raise ModelError(f"reranker kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.model.eval()
        if kind == "listwise":
            from rankers.listwise import ModelScorer, Windows

            self.scorer = ModelScorer(self.model, self.tokenizer, windows or Windows())
        else:
            from rankers.reranker import PromptBuilder

            self.yes, self.no = answer_ids(self.tokenizer)
            self.build = PromptBuilder(self.tokenizer, max_tokens, with_rationale=False)

    def score(self, row: Any, names: Sequence[str]) -> list[float]:
        import torch

        from rankers.reranker import score

        if not names:
            return []
        if self.kind == "listwise":
            return self.scorer.score(row, names)
        with torch.no_grad():
            return score(self.model, [self.build(row, n) for n in names], self.tokenizer.pad_token_id,
                         self.yes, self.no).tolist()

    def close(self) -> None:
        pass


class ServedReranker:
    """Listwise reranking through any OpenAI-compatible server (``llm.Backend``): the served model zero-shot,
    with the backend's retries, its request cache (``cache``: a sqlite file) and its accounting (``usage``)."""

    kind, trained = "listwise", False

    def __init__(self, base_url: str, model: str | None = None, windows=None, cache: Path | None = None,
                 api_key_env: str = "OPENAI_API_KEY"):
        from llm import BackendOptions, BackendPool, RequestCache, Usage
        from rankers.listwise import BackendScorer, Windows

        self.pool = BackendPool(BackendOptions(engine="openai", base_url=base_url, api_key_env=api_key_env),
                                cache=RequestCache(cache) if cache is not None else None)
        try:
            backend = self.pool.open(model, logprobs=True)
            self.usage = Usage(model=str(backend.identity))
            self.scorer = BackendScorer(backend, windows or Windows(), self.usage)
        except BaseException:
            self.pool.close()
            raise
        self.name = f"{backend.identity.name} served at {base_url} (zero-shot, listwise)"

    def score(self, row: Any, names: Sequence[str]) -> list[float]:
        return self.scorer.score(row, names)

    def close(self) -> None:
        self.pool.close()


class Memoized:
    """A reranker whose scores are kept, so one LLM answer serves every order built from it (fused orders,
    boosts, evaluation conditions). Pointwise scores are kept per (row, name); listwise ones per (row, list
    shown), since a letter's probability depends on the other candidates."""

    def __init__(self, reranker: Any):
        self.reranker, self.kept = reranker, {}
        self.kind = getattr(reranker, "kind", "pointwise")

    def score(self, row: Any, names: Sequence[str]) -> list[float]:
        if self.kind == "listwise":
            key = (row.key, tuple(names))
            if key not in self.kept:
                self.kept[key] = list(self.reranker.score(row, names))
            return self.kept[key]
        todo = [n for n in dict.fromkeys(names) if (row.key, n) not in self.kept]
        for n, s in zip(todo, self.reranker.score(row, todo) if todo else []):
            self.kept[(row.key, n)] = s
        return [self.kept[(row.key, n)] for n in names]


def boosted(ids: Sequence[int], scores: Sequence[float], unseen: set[int], boost: float,
            temperature: float) -> list[int]:
    """``ids`` re-sorted by score, with T·ln(boost) added to the unseen ones (stable on ties)."""
    bonus = temperature * math.log(boost) if boost != 1.0 else 0.0
    keyed = [(-(s + (bonus if m in unseen else 0.0)), i) for i, (m, s) in enumerate(zip(ids, scores))]
    return [ids[i] for _, i in sorted(keyed)]


def rerank(row: Any, retrieved: list[int], top_n: int, scores_of: Callable[[Any, list[int]], dict[int, float]],
           unseen: set[int], boost: float, first: Sequence[float] | None = None, fuse: float = 0.0) -> list[int]:
    """The retriever's list with its first ``top_n`` re-ordered by the reranker (boost applied).

    ``fuse`` > 0 adds ``fuse`` x the first stage's score over its temperature (``first``, the retriever's
    scores of ``retrieved``) to the reranker's: a product of the two models' probabilities, so a reranker
    unsure between candidates (flat letter probabilities) leaves them in the retriever's order.  The first
    stage's scores already carry the unseen boost (``fuse`` x ln B of it), so only the rest is added here."""
    head = retrieved[:top_n]
    scores = scores_of(row, head)
    fuse = fuse if first is not None else 0.0
    combined = [scores[m] + (fuse * first[i] / RETRIEVER_TEMPERATURE if fuse else 0.0) for i, m in enumerate(head)]
    return boosted(head, combined, unseen, boost ** (1.0 - fuse), RERANKER_TEMPERATURE) + retrieved[top_n:]


def rank_rows(rows: Sequence[Any], retriever: Retriever | Ensemble, misconceptions: dict[int, str], k: int = 25,
              reranker: Reranker | None = None, top_n: int = 8, unseen: set[int] = frozenset(),
              boost: float = 1.0, batch_size: int = 256, skip_margin: float | None = None,
              stats: dict | None = None, fuse: float = 0.0) -> Iterator[list[int]]:
    """The top-k misconception ids of each row, in input order, computed a batch at a time.

    ``skip_margin``: a row whose first-stage score of its first candidate leads the second's by at least
    this much is not reranked (the first stage is confident); ``stats`` counts reranked and skipped rows.
    ``fuse``: the first stage's weight in the reranked order (see ``rerank``; 0: the reranker's alone)."""
    bonus = retriever.bonus(unseen, boost)
    stats = stats if stats is not None else {}
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        for row, (ids, scores) in zip(batch, retriever.search(batch, max(k, top_n), bonus)):
            confident = skip_margin is not None and len(scores) > 1 and scores[0] - scores[1] >= skip_margin
            if reranker is not None and top_n > 0 and confident:
                stats["skipped"] = stats.get("skipped", 0) + 1
            elif reranker is not None and top_n > 0:
                stats["reranked"] = stats.get("reranked", 0) + 1
                ids = rerank(row, ids, top_n,
                             lambda r, head: dict(zip(head, reranker.score(r, [misconceptions[m] for m in head]))),
                             unseen, boost, scores, fuse)
            yield ids[:k]
