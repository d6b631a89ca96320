"""Which engine answers: options, model identities, and a pool that opens one engine per distinct model.

Engines (``BackendOptions.engine``):

- ``embedded`` (default): a preset (``qwen2.5-coder-0.5b``) or a ``.gguf`` path,
  served by llama.cpp's OpenAI-compatible server that we start on 127.0.0.1;
- ``openai``: an OpenAI-compatible server already running at ``base_url``
  (``vllm serve``, ``python -m llama_cpp.server``, the OpenAI API); the model
  is the name the server serves (default: the first it lists); several URLs
  are a pool of servers of the same model, each batch spread over them;
- ``vllm``: vLLM in-process; the model is a Hugging Face id or folder.

All three are reached through the same ``Backend`` interface; the embedded
default and external servers share the same client (:class:`OpenAIBackend`).
Roles naming the same model share one engine (one server, one vLLM instance).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from llm.base import Backend, BackendError, ModelIdentity
from llm.cache import CachedBackend, RequestCache
from llm.models import DEFAULT_PRESET, cache_dir, resolve_model
from llm.openai_backend import ClientOptions, OpenAIBackend, list_models
from llm.spread import SpreadBackend

ENGINES = ("embedded", "openai", "vllm")
# The smallest context of the embedded server that holds a request: a distractor prompt is about 760 tokens
# (docs/results/2026-11-22-backend-overhead-and-prefix-order.md), and the steps' answers take up to 400 (generators.question).
MIN_N_CTX = 1024


@dataclass
class BackendOptions:
    engine: str = "embedded"
    base_url: str | tuple[str, ...] | None = None  # the server(s) for engine "openai"; several: a pool
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the API key
    revision: str = ""  # recorded as the weights' identity for servers and vLLM (e.g. a commit hash)
    n_ctx: int = 4096  # context of the embedded server
    threads: int | None = None  # CPU threads of the embedded server (None: one per core)
    concurrency: int | None = None  # requests in flight; default 1 for the embedded server, 8 otherwise
    timeout: float = 300.0
    max_retries: int = 6
    structured: str = "auto"
    vllm_args: dict[str, Any] = field(default_factory=dict)  # extra vllm.LLM(...) arguments

    def __post_init__(self) -> None:
        if isinstance(self.base_url, (list, tuple)):
            self.base_url = tuple(self.base_url) if len(self.base_url) > 1 else (self.base_url[0] if self.base_url else None)
        if self.engine not in ENGINES:
            raise BackendError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.engine == "openai" and not self.base_url:
            raise BackendError("engine 'openai' needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if self.base_url and self.engine != "openai":
            raise BackendError(f"--base-url is for --engine openai; engine {self.engine!r} does not use a server "
                               "URL (drop --base-url, or use --engine openai)")

    @property
    def urls(self) -> tuple[str, ...]:
        """The servers of engine "openai" (one or a pool)."""
        if not self.base_url:
            return ()
        return self.base_url if isinstance(self.base_url, tuple) else (self.base_url,)

    def client(self) -> ClientOptions:
        default = 1 if self.engine == "embedded" else 8  # llama-cpp-python's server answers one at a time
        embedded = self.engine == "embedded"
        # llama-cpp-python's server defaults to repeat_penalty 1.1; other engines (and our in-process past) use none
        # auto on our own llama-cpp-python server: its form straight away (it does not know OpenAI's)
        structured = "llama.cpp" if embedded and self.structured == "auto" else self.structured
        return ClientOptions(concurrency=self.concurrency or default, timeout=self.timeout,
                             max_retries=self.max_retries, structured=structured,
                             extra_body={"repeat_penalty": 1.0} if embedded else None)

    def as_record(self) -> dict:
        base_url = list(self.base_url) if isinstance(self.base_url, tuple) else self.base_url
        return {"engine": self.engine, "base_url": base_url, "revision": self.revision, "n_ctx": self.n_ctx,
                "threads": self.threads,
                "client": vars(self.client()), "vllm_args": self.vllm_args}


class BackendPool:
    """Opens engines on demand (one per distinct model), wraps them in the request cache, closes them all."""

    def __init__(self, options: BackendOptions, cache: RequestCache | None = None):
        self.options, self.cache = options, cache
        self.servers: list = []  # embedded LlamaServer processes
        self._engines: dict[tuple[str, bool], Backend] = {}
        self._served: list[str] | None = None

    def model_name(self, spec: str | None) -> str:
        """The spec with the engine's default filled in."""
        if spec:
            return spec
        if self.options.engine == "embedded":
            return DEFAULT_PRESET
        if self.options.engine == "openai":
            if self._served is None:
                self._served = list_models(self.options.urls[0], self._api_key())
            if not self._served:
                raise BackendError(f"{self.options.urls[0]}: the server lists no model; name one with --model")
            return self._served[0]
        raise BackendError("engine 'vllm' needs a model: --model HF_ID_OR_FOLDER")

    def identify(self, spec: str | None) -> ModelIdentity:
        """The identity rows and the cache record, without loading anything."""
        name = self.model_name(spec)
        if self.options.engine == "embedded":
            model = resolve_model(name)
            return ModelIdentity(name=model.name, weights=model.sha256, backend="llama.cpp")
        return ModelIdentity(name=name, weights=self.options.revision, backend=self.options.engine)

    def open(self, spec: str | None, logprobs: bool = False) -> Backend:
        """The engine of a model, started on first use. ``logprobs``: a role reads token log-probabilities;
        llama-cpp-python's server gives them only when it keeps every position's logits, which slows
        prompts, so on the embedded engine such roles get a server of their own."""
        name = self.model_name(spec)
        key = (name, logprobs and self.options.engine == "embedded")
        if key not in self._engines:
            engine = self._start(name, logits_all=key[1])
            self._engines[key] = CachedBackend(engine, self.cache) if self.cache is not None else engine
        return self._engines[key]

    def _start(self, name: str, logits_all: bool = False) -> Backend:
        identity = self.identify(name)
        if self.options.engine == "vllm":
            from llm.vllm_backend import VLLMBackend

            return VLLMBackend(name, identity, self.options.vllm_args)
        if self.options.engine == "openai":
            servers = [OpenAIBackend(url, name, identity, self._api_key(), self.options.client()) for url in self.options.urls]
            return servers[0] if len(servers) == 1 else SpreadBackend(servers)
        from llm.server import LlamaServer

        server = LlamaServer(resolve_model(name).path, alias=identity.name, n_ctx=self.options.n_ctx,
                             n_threads=self.options.threads, log_dir=cache_dir() / "logs", logits_all=logits_all)
        self.servers.append(server)
        server.start()
        return OpenAIBackend(server.base_url, identity.name, identity, None, self.options.client(),
                             gone=server.exit_reason)

    def _api_key(self) -> str | None:
        return os.environ.get(self.options.api_key_env)

    def close(self) -> None:
        for engine in self._engines.values():
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - closing must reach the servers below
                pass
        self._engines.clear()
        for server in self.servers:
            server.stop()
        self.servers.clear()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> "BackendPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
