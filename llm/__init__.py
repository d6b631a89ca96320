"""LLM backends behind one interface (``Backend.chat``), the embedded models, and the retry-and-parse step runner."""
from llm.base import Backend, BackendError, ChatRequest, ChatResponse, ModelIdentity, Usage
from llm.models import DEFAULT_PRESET, PRESETS, cache_dir, resolve_model


def identify(spec: str) -> ModelIdentity:
    """The identity a backend for ``spec`` will report, without loading the model."""
    model = resolve_model(spec)
    return ModelIdentity(name=model.name, weights=model.sha256, backend="llama.cpp")


def open_backend(spec: str, n_ctx: int = 4096) -> Backend:
    """A backend for a model spec: a preset name (``qwen2.5-coder-0.5b``) or a ``.gguf`` path."""
    from llm.llamacpp import LlamaCppBackend

    return LlamaCppBackend(spec, n_ctx=n_ctx)


__all__ = ["Backend", "BackendError", "ChatRequest", "ChatResponse", "DEFAULT_PRESET", "ModelIdentity",
           "PRESETS", "Usage", "cache_dir", "identify", "open_backend", "resolve_model"]
