"""In-process llama.cpp backend (llama-cpp-python): the embedded CPU default.

Each stage gets its own ``Llama`` context so that each keeps its own KV cache:
the generator's cluster-wide many-shot prefix is evaluated once per cluster
and reused, while judge and teacher keep theirs.  The weights are mmapped, so
several contexts on one GGUF share the same pages of memory.
"""
from __future__ import annotations

import os
import time
from typing import Iterable, Iterator

from llm.base import BackendError, ChatRequest, ChatResponse, ModelIdentity
from llm.models import resolve_model


class LlamaCppBackend:
    def __init__(self, spec: str, n_ctx: int = 4096, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError(
                "llama-cpp-python is not installed (pip install 'misconception-factory[cpu]')") from None
        model = resolve_model(spec)  # cached: assembly and hashing happen once
        self.identity = ModelIdentity(name=model.name, weights=model.sha256, backend="llama.cpp")
        try:
            self._llm = Llama(model_path=str(model.path), n_ctx=n_ctx,
                              n_threads=n_threads or os.cpu_count() or 1,
                              n_batch=512, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"model {model.path}: llama.cpp cannot load it: {e}") from None

    def chat(self, request: ChatRequest) -> ChatResponse:
        kwargs = {}
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        start = time.perf_counter()
        out = self._llm.create_chat_completion(
            messages=request.as_openai_messages(), max_tokens=request.max_tokens,
            temperature=request.temperature, top_p=request.top_p, seed=request.seed, **kwargs)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResponse(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
            seconds=time.perf_counter() - start,
            structured=request.json_schema is not None,
        )

    def chat_many(self, requests: Iterable[ChatRequest]) -> Iterator[ChatResponse]:
        for request in requests:
            yield self.chat(request)

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()
