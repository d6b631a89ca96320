"""The one interface every LLM backend implements.

Stages (generator, judge, teacher) only ever build a :class:`ChatRequest` and
read a :class:`ChatResponse`; which engine answers (llama.cpp in-process, an
OpenAI-compatible server, vLLM) is chosen by the model spec, not by the stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol


class BackendError(Exception):
    """The LLM backend cannot be used (bad model spec, missing package, dead engine). One line."""


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    json_schema: dict | None = None  # constrain the output to this JSON schema where supported

    def as_openai_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class ChatResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    seconds: float = 0.0
    cached_prompt_tokens: int | None = None  # where the backend reports prefix reuse
    structured: bool = False  # True when the backend constrained the output to json_schema


@dataclass(frozen=True)
class ModelIdentity:
    """What a dataset row records about the model that wrote it."""

    name: str  # e.g. "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"
    weights: str  # sha256 of the weights file, or a server-side revision
    backend: str  # "llama.cpp", "openai", "vllm"

    def __str__(self) -> str:
        return f"{self.name}@{self.weights[:12]}" if self.weights else self.name


class Backend(Protocol):
    identity: ModelIdentity

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request (blocking)."""

    def chat_many(self, requests: Iterable[ChatRequest]) -> Iterator[ChatResponse]:
        """Answer requests in order; batching engines override this."""

    def close(self) -> None:
        """Release the engine."""


@dataclass
class Usage:
    """Token and request accounting for one stage."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, response: ChatResponse) -> None:
        self.requests += 1
        self.prompt_tokens += response.prompt_tokens
        self.completion_tokens += response.completion_tokens
        self.seconds += response.seconds

    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 2),
                "failures": dict(self.failures)}
