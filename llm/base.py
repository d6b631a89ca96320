"""The one interface every LLM backend implements, and the accounting of what it did.

Stages (generator, judge, teacher) only ever build :class:`ChatRequest` objects
and read :class:`ChatResponse` objects; which engine answers (the embedded
llama.cpp server, any OpenAI-compatible server, vLLM in-process) is chosen by
the backend options, never by the stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence


class BackendError(Exception):
    """The LLM backend cannot be used (bad model spec, missing package, dead server). One line."""


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    json_schema: dict | None = None  # constrain the output to this JSON schema where supported
    prompt_version: str = ""  # the templates' content hash: part of the request-cache key
    logprobs: int = 0  # > 0: return the top ``logprobs`` alternatives of the first generated token

    def as_openai_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class ChatResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    seconds: float = 0.0  # wall time of the successful attempt
    cached_prompt_tokens: int | None = None  # prefix tokens the server reused, where it reports them
    structured: bool = False  # True when the server constrained the output to json_schema
    retries: int = 0  # failed transport attempts before this answer
    errors: tuple[str, ...] = ()  # the kind of each failed attempt ("429", "500", "timeout", ...)
    replayed: bool = False  # answered from the request cache, not by the LLM
    # with ChatRequest.logprobs: the first generated token's most likely alternatives, (token text, logprob)
    top_logprobs: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ModelIdentity:
    """What a dataset row records about the model that wrote it (and what the request cache keys on)."""

    name: str  # e.g. "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", or the name a server serves
    weights: str  # sha256 of the weights file, or a revision; "" when unknown
    backend: str  # "llama.cpp", "openai", "vllm"

    def __str__(self) -> str:
        return f"{self.name}@{self.weights[:12]}" if self.weights else self.name


class Backend(Protocol):
    identity: ModelIdentity

    def chat_many(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResponse]]:
        """Answer requests, yielding ``(index, response)`` as each arrives (not necessarily in order).

        Requests are dispatched in the order given, so callers put requests
        that share a prompt prefix next to each other.  Raises BackendError
        when the backend gives up (retries exhausted, circuit open, dead engine).
        """

    def close(self) -> None:
        """Release the engine or connection."""


@dataclass
class Usage:
    """Accounting for one stage: requests, tokens, retries and failures by kind, time."""

    model: str = ""
    requests: int = 0  # LLM answers used (replayed ones included)
    replayed: int = 0  # of which answered from the request cache
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # where the server reports prefix reuse
    completion_tokens: int = 0
    structured: int = 0  # answers constrained by the server to the JSON schema
    parsed: int = 0  # answers with a schema that the server did not constrain (parsed and validated only)
    retries: int = 0  # transport attempts that failed and were retried
    seconds: float = 0.0  # summed request time of the answers the LLM computed
    computed_tokens: int = 0  # completion tokens of those answers
    wall_seconds: float = 0.0  # wall time the stage ran (with concurrency, less than ``seconds``)
    failures: dict[str, int] = field(default_factory=dict)  # by kind: transport ("429", "timeout") and output

    def add(self, response: ChatResponse, schema: bool) -> None:
        self.requests += 1
        self.prompt_tokens += response.prompt_tokens
        self.cached_prompt_tokens += response.cached_prompt_tokens or 0
        self.completion_tokens += response.completion_tokens
        if schema:
            if response.structured:
                self.structured += 1
            else:
                self.parsed += 1
        if response.replayed:
            self.replayed += 1
            return
        self.seconds += response.seconds
        self.computed_tokens += response.completion_tokens
        self.retries += response.retries
        for kind in response.errors:
            self.fail(kind)

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def merge(self, other: "Usage") -> None:
        """Add another account of the same kind (another worker's, another stage's of the same model)."""
        for name in ("requests", "replayed", "prompt_tokens", "cached_prompt_tokens", "completion_tokens",
                     "structured", "parsed", "retries", "seconds", "computed_tokens", "wall_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, n in other.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + n

    def tokens_per_second(self) -> float:
        """Completion tokens per second of the answers the LLM computed (replayed ones excluded)."""
        return self.computed_tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"model": self.model, "requests": self.requests, "replayed": self.replayed,
                "prompt_tokens": self.prompt_tokens, "cached_prompt_tokens": self.cached_prompt_tokens,
                "completion_tokens": self.completion_tokens, "structured": self.structured,
                "parsed": self.parsed, "retries": self.retries, "seconds": round(self.seconds, 2),
                "wall_seconds": round(self.wall_seconds, 2), "failures": dict(sorted(self.failures.items()))}
