"""vLLM in-process (offline ``vllm.LLM``): the GPU path.  Optional: ``pip install 'misconception-factory[gpu]'``.

One engine per model: generator, judge and teacher share it when they name
the same model (see ``llm.backends``).  Prefix caching is on, so the
many-shot prefix of a cluster is computed once per batch; JSON schemas go
through vLLM's structured outputs (guided decoding); every request carries
its own sampling seed.  CUDA out-of-memory and a dead engine become a
one-line :class:`BackendError`, so the run stops (its rows kept) instead of hanging.
"""
from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from llm.base import BackendError, ChatRequest, ChatResponse, ModelIdentity

GPU_EXTRA = "pip install 'misconception-factory[gpu]'"


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise BackendError(f"vLLM is not installed: {GPU_EXTRA} (needs a CUDA GPU)") from None
    return vllm


def sampling_kwargs(request: ChatRequest) -> dict[str, Any]:
    """The ``SamplingParams`` arguments for a request (the schema is added by :func:`sampling_params`)."""
    kwargs = {"max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
              "seed": request.seed}
    if request.logprobs:
        kwargs["logprobs"] = request.logprobs
    return kwargs


def sampling_params(vllm, request: ChatRequest):
    kwargs = sampling_kwargs(request)
    if request.json_schema is not None:
        sampling = vllm.sampling_params
        if hasattr(sampling, "StructuredOutputsParams"):  # vLLM >= 0.10.2
            kwargs["structured_outputs"] = sampling.StructuredOutputsParams(json=request.json_schema)
        else:  # older releases
            kwargs["guided_decoding"] = sampling.GuidedDecodingParams(json=request.json_schema)
    return vllm.SamplingParams(**kwargs)


def _fatal(e: BaseException) -> bool:
    """Errors after which the engine cannot go on: CUDA OOM, a dead engine."""
    name = type(e).__name__
    return "OutOfMemory" in name or name in ("EngineDeadError", "DeadEngineError") or "out of memory" in str(e)


class VLLMBackend:
    def __init__(self, model: str, identity: ModelIdentity, engine_args: dict[str, Any] | None = None):
        vllm = import_vllm()
        self._vllm, self.identity = vllm, identity
        args = {"enable_prefix_caching": True, "seed": 0, **(engine_args or {})}
        try:
            self._llm = vllm.LLM(model=model, **args)
        except Exception as e:  # noqa: BLE001 - vLLM raises many kinds; all end the run with one line
            raise BackendError(f"vLLM cannot load {model}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None

    def chat_many(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResponse]]:
        if not requests:
            return
        start = time.perf_counter()
        try:
            outputs = self._llm.chat([r.as_openai_messages() for r in requests],
                                     sampling_params=[sampling_params(self._vllm, r) for r in requests],
                                     use_tqdm=False)
        except Exception as e:  # noqa: BLE001
            kind = "CUDA out of memory" if "memory" in str(e).lower() else type(e).__name__
            if _fatal(e):
                raise BackendError(f"vLLM engine stopped ({kind}): lower --vllm-gpu-memory or --batch-size; "
                                   "the rows made so far are kept") from None
            raise BackendError(f"vLLM failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
        seconds = (time.perf_counter() - start) / len(requests)
        for i, out in enumerate(outputs):
            completion = out.outputs[0]
            yield i, ChatResponse(
                text=completion.text, prompt_tokens=len(out.prompt_token_ids or ()),
                completion_tokens=len(completion.token_ids), finish_reason=completion.finish_reason or "stop",
                seconds=seconds, cached_prompt_tokens=getattr(out, "num_cached_tokens", None),
                structured=requests[i].json_schema is not None, top_logprobs=_first_token_logprobs(completion))

    def close(self) -> None:
        self._llm = None


def _first_token_logprobs(completion) -> tuple[tuple[str, float], ...]:
    """vLLM's ``logprobs[0]``: token id -> Logprob(logprob, decoded_token), for the first generated token."""
    first = (getattr(completion, "logprobs", None) or [None])[0]
    if not first:
        return ()
    ranked = sorted(first.values(), key=lambda lp: -lp.logprob)
    return tuple((str(lp.decoded_token), float(lp.logprob)) for lp in ranked)
