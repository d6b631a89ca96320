"""The request cache: every LLM answer persisted (sqlite) under a key of the exact request; re-runs replay.

The key is the sha256 of the canonical JSON of everything that decides the
answer: the model identity (name, weights hash or revision, engine), the
rendered messages, the sampling parameters including the seed, the JSON
schema and the prompt templates' version.  A killed run loses no LLM work: on
re-run, every request already answered is replayed from here and only the rest
reach the LLM.  Only successful transport answers are stored (an unparsable
answer is an answer: it is stored and replayed, so retries stay reproducible).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterator, Sequence

from llm.base import Backend, BackendError, ChatRequest, ChatResponse, ModelIdentity


def canonical_request(identity: ModelIdentity, request: ChatRequest) -> dict:
    return {
        "model": {"name": identity.name, "weights": identity.weights, "backend": identity.backend},
        "messages": [list(m) for m in request.messages],
        "sampling": {"max_tokens": request.max_tokens, "temperature": request.temperature,
                     "top_p": request.top_p, "seed": request.seed},
        "json_schema": request.json_schema,
        "prompt_version": request.prompt_version,
        # only when asked for, so the keys of requests without logprobs stay what they were
        **({"logprobs": request.logprobs} if request.logprobs else {}),
    }


def _dumps(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(identity: ModelIdentity, request: ChatRequest) -> str:
    return hashlib.sha256(_dumps(canonical_request(identity, request)).encode()).hexdigest()


_FIELDS = ("text", "prompt_tokens", "completion_tokens", "finish_reason", "seconds",
           "cached_prompt_tokens", "structured", "top_logprobs")


def cache_entry(key: str, model: ModelIdentity, request: ChatRequest, response: ChatResponse) -> tuple[str, str, str, str]:
    stored = {k: getattr(response, k) for k in _FIELDS}
    return key, str(model), _dumps(canonical_request(model, request)), _dumps(stored)


def decode_response(text: str) -> ChatResponse | None:
    """A stored answer as a replayed response; an unreadable entry is a miss (the new answer replaces it)."""
    try:
        stored = json.loads(text)
        fields = {k: stored[k] for k in _FIELDS if k in stored}  # answers stored before top_logprobs lack it
        fields["top_logprobs"] = tuple((str(t), float(lp)) for t, lp in fields.get("top_logprobs", ()))
        return ChatResponse(**fields, replayed=True)
    except (ValueError, KeyError, TypeError):
        return None


class RequestCache:
    """A sqlite file of ``key -> response``; each answer is committed as it arrives.

    Opening checks the file (``PRAGMA quick_check``), so a damaged cache is refused before any LLM work;
    a sqlite error later (the file damaged while in use, a full disk) is a one-line BackendError too.
    Either message says how to go on: move the file aside, or run without the cache (``without``: the flag
    that does, for the message).
    """

    def __init__(self, path: Path, without: str | None = None):
        self.path, self.without = Path(path), without
        with self._errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(1)")]
            if problems != ["ok"]:
                self._db.close()
                raise sqlite3.DatabaseError(f"damaged ({' '.join(str(problems[0]).split())[:120]})")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
                             " request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)")

    @contextlib.contextmanager
    def _errors(self):
        """sqlite's errors as one-line BackendErrors that say how to go on."""
        try:
            yield
        except sqlite3.Error as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            without = f", or run without it ({self.without})" if self.without else ""
            raise BackendError(f"request cache {self.path}: {reason}; move the file aside (a new cache starts empty: "
                               f"its answers are asked again){without}") from None

    def get(self, key: str) -> ChatResponse | None:
        with self._errors():
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else decode_response(row[0])

    def put(self, key: str, model: ModelIdentity, request: ChatRequest, response: ChatResponse) -> None:
        """Store an answer (and its request, for audits and benchmarks), committed at once."""
        with self._errors():
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                             (*cache_entry(key, model, request, response), time.time()))

    def put_entries(self, entries: Sequence[tuple[str, str, str, str]]) -> None:
        """Store (key, model, request JSON, response JSON) entries, as a ``ReplayCache`` hands them back."""
        now = time.time()
        with self._errors():
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                                     [(*entry, now) for entry in entries])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def answers(self) -> dict[str, str]:
        """Every stored answer, key -> response JSON: what a ``ReplayCache`` on another process replays."""
        with self._errors():
            return dict(self._db.execute("SELECT key, response FROM responses"))

    def requests(self) -> list[dict]:
        """Every stored request in the order it was answered (canonical form, as keyed)."""
        with self._errors():
            rows = self._db.execute("SELECT request FROM responses ORDER BY rowid").fetchall()
        return [json.loads(r[0]) for r in rows]

    def __len__(self) -> int:
        with self._errors():
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class ReplayCache:
    """A request cache held in memory, for a worker process that cannot share the run's sqlite file (a Ray
    worker on another node): it replays the answers shipped to it (``RequestCache.answers``) and keeps the new
    ones until ``take_new`` hands them to the process that owns the file (``RequestCache.put_entries``)."""

    def __init__(self, answers: dict[str, str] | None = None):
        self._answers = dict(answers or {})
        self._new: list[tuple[str, str, str, str]] = []

    def get(self, key: str) -> ChatResponse | None:
        text = self._answers.get(key)
        return None if text is None else decode_response(text)

    def put(self, key: str, model: ModelIdentity, request: ChatRequest, response: ChatResponse) -> None:
        entry = cache_entry(key, model, request, response)
        self._answers[key] = entry[3]
        self._new.append(entry)

    def take_new(self) -> list[tuple[str, str, str, str]]:
        new, self._new = self._new, []
        return new

    def __len__(self) -> int:
        return len(self._answers)

    def close(self) -> None:
        pass


class CachedBackend:
    """A backend wrapped so that answered requests are replayed and new answers are stored."""

    def __init__(self, inner: Backend, cache: RequestCache):
        self.inner, self.cache = inner, cache
        self.identity = inner.identity

    def chat_many(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResponse]]:
        keys = [request_key(self.identity, r) for r in requests]
        misses = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is None:
                misses.append(i)
            else:
                yield i, hit
        if misses:
            for j, response in self.inner.chat_many([requests[i] for i in misses]):
                i = misses[j]
                self.cache.put(keys[i], self.identity, requests[i], dataclasses.replace(response, replayed=False))
                yield i, response

    def close(self) -> None:
        self.inner.close()
