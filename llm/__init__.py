"""LLM backends behind one interface (``Backend.chat_many``), the request cache, the embedded models, and the step runner."""
from llm.backends import ENGINES, MIN_N_CTX, BackendOptions, BackendPool
from llm.base import Backend, BackendError, ChatRequest, ChatResponse, ModelIdentity, Usage
from llm.cache import CachedBackend, ReplayCache, RequestCache, request_key
from llm.models import DEFAULT_PRESET, PRESETS, cache_dir, resolve_model

__all__ = ["Backend", "BackendError", "BackendOptions", "BackendPool", "CachedBackend", "ChatRequest",
           "ChatResponse", "DEFAULT_PRESET", "ENGINES", "MIN_N_CTX", "ModelIdentity", "PRESETS", "ReplayCache", "RequestCache", "Usage",
           "cache_dir", "request_key", "resolve_model"]
