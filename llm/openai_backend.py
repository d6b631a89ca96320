"""Any OpenAI-compatible chat server (vLLM serve, llama.cpp's server, the OpenAI API), through ``openai``'s async client.

- Bounded concurrency: at most ``concurrency`` requests in flight, dispatched
  in the order given (so requests that share a prefix reach the server together).
- Per-request timeout; retries with exponential backoff and jitter on 429,
  5xx, timeouts, dropped connections and malformed bodies, honouring
  ``Retry-After``; each answer carries the kinds of the attempts that failed.
- A circuit breaker: after ``breaker_threshold`` failed attempts in a row (or a
  request out of retries) the backend raises :class:`BackendError` and the run
  stops with what it made kept, instead of spinning.
- Structured output: ``response_format`` with the JSON schema, in the OpenAI
  form (``json_schema``) or llama-cpp-python's (``json_object`` + ``schema``);
  ``auto`` tries the OpenAI form and falls back when the server refuses it,
  down to plain text that the step parses and validates.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from llm.base import BackendError, ChatRequest, ChatResponse, ModelIdentity

STRUCTURED_MODES = ("auto", "json_schema", "llama.cpp", "off")
MAX_RETRY_AFTER = 120.0


@dataclass
class ClientOptions:
    concurrency: int = 8
    timeout: float = 300.0  # seconds per attempt
    max_retries: int = 6  # failed attempts retried per request
    backoff: float = 1.0  # first retry delay in seconds; doubles each retry, with jitter
    max_backoff: float = 60.0
    breaker_threshold: int = 10  # failed attempts in a row (over all requests) that stop the run
    structured: str = "auto"
    extra_body: dict | None = None  # server-specific sampling fields sent with every request


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return min(MAX_RETRY_AFTER, max(0.0, parsed.timestamp() - time.time())) if parsed else None


_FORMAT_WORDS = ("response_format", "json_schema", "schema", "structured", "grammar", "guided")


def _refuses_format(status: int, message: str) -> bool:
    """The server rejected our response_format: a 400/422 (or llama-cpp-python's 500) whose message is
    about it. Any other 400/422 (a bad model name, a prompt too long) is an error, not a reason to downgrade."""
    text = message.lower()
    return status in (400, 422, 500) and any(w in text for w in _FORMAT_WORDS)


def response_format(schema: dict, mode: str) -> dict | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    if mode == "llama.cpp":
        return {"type": "json_object", "schema": schema}
    return None


class OpenAIBackend:
    def __init__(self, base_url: str, model: str, identity: ModelIdentity, api_key: str | None = None,
                 options: ClientOptions | None = None, gone: Callable[[], str | None] | None = None):
        import openai  # a core dependency; imported here to keep `--help` fast

        self._openai = openai
        self.base_url, self.model, self.identity = base_url, model, identity
        self._gone = gone  # an embedded server's LlamaServer.exit_reason: a dead server is not retried, and named
        self.options = options or ClientOptions()
        if self.options.structured not in STRUCTURED_MODES:
            raise BackendError(f"structured output mode {self.options.structured!r}: expected one of {STRUCTURED_MODES}")
        self._mode = "json_schema" if self.options.structured == "auto" else self.options.structured
        self._loop = asyncio.new_event_loop()
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                                          timeout=self.options.timeout)
        self._semaphore: asyncio.Semaphore | None = None
        self._failures_in_a_row = 0
        self._last_failure = ""
        self._open = False  # the circuit breaker tripped
        self._logprobs = True  # False once the server refused logprobs: steps then read the written answer

    # -- public interface ---------------------------------------------------------------------------------
    def chat_many(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResponse]]:
        if not requests:
            return
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.options.concurrency)
        tasks = [self._loop.create_task(self._chat(r)) for r in requests]
        index = {t: i for i, t in enumerate(tasks)}
        pending = set(tasks)
        try:
            while pending:
                done, pending = self._loop.run_until_complete(
                    asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED))
                for task in sorted(done, key=index.__getitem__):
                    yield index[task], task.result()
        finally:
            for task in pending:
                task.cancel()
            # wait for the cancelled ones and collect every exception, so none is reported as never retrieved
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    # -- one request ----------------------------------------------------------------------------------------
    async def _chat(self, request: ChatRequest) -> ChatResponse:
        assert self._semaphore is not None
        async with self._semaphore:
            errors: list[str] = []
            while True:
                self._check_breaker()
                start = time.perf_counter()
                try:
                    response = await self._attempt(request)
                except _Retryable as e:
                    errors.append(e.kind)
                    self._failures_in_a_row += 1
                    self._last_failure = f"{e.kind}: {e}"
                    gone = self._server_gone()
                    if gone or len(errors) > self.options.max_retries:
                        raise self._stopping(f"request failed {len(errors)} times (last {self._last_failure})",
                                             gone) from None
                    await asyncio.sleep(self._delay(len(errors), e.retry_after))
                    continue
                self._failures_in_a_row = 0
                return ChatResponse(**response, seconds=time.perf_counter() - start,
                                    retries=len(errors), errors=tuple(errors))

    def _check_breaker(self) -> None:
        if self._open or self._failures_in_a_row >= self.options.breaker_threshold:
            self._open = True
            raise self._stopping(f"{self._failures_in_a_row} failed attempts in a row (last {self._last_failure})",
                                 self._server_gone())

    def _server_gone(self) -> str | None:
        """How the embedded server ended, or None while it runs (or where there is no embedded server)."""
        return self._gone() if self._gone is not None else None

    def _stopping(self, why: str, gone: str | None) -> BackendError:
        """The error that stops the run: the server's own death where an embedded server died, else ``why``."""
        if gone:
            return BackendError(f"{self.base_url}: the embedded llama.cpp server {gone}; stopping")
        return BackendError(f"{self.base_url}: {why}; stopping")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.options.max_backoff, self.options.backoff * 2 ** (attempt - 1))
        backoff *= random.uniform(0.5, 1.0)  # jitter: clients that failed together do not retry together
        return max(backoff, retry_after or 0.0)

    async def _attempt(self, request: ChatRequest) -> dict:
        openai = self._openai
        kwargs = dict(model=self.model, messages=request.as_openai_messages(), max_tokens=request.max_tokens,
                      temperature=request.temperature, top_p=request.top_p, seed=request.seed)
        if self.options.extra_body:
            kwargs["extra_body"] = self.options.extra_body
        mode = self._mode if request.json_schema is not None else "off"
        if mode != "off":
            kwargs["response_format"] = response_format(request.json_schema, mode)
        if request.logprobs and self._logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.logprobs)
        try:
            out = await self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            raise _Retryable("timeout", f"no answer within {self.options.timeout:g} s") from None
        except openai.APIConnectionError as e:
            raise _Retryable("connection", str(e.__cause__ or e)[:200]) from None
        except openai.APIStatusError as e:
            status = e.status_code
            if mode != "off" and self.options.structured == "auto" and _refuses_format(status, e.message):
                self._downgrade(mode)
                return await self._attempt(request)
            if "logprobs" in kwargs and "logprobs" in e.message.lower() and status in (400, 422, 500):
                self._logprobs = False  # e.g. llama-cpp-python started without --logits_all true
                return await self._attempt(request)
            if status == 429 or status >= 500 or status in (408, 409):
                raise _Retryable(str(status), e.message[:200], _retry_after(e.response.headers)) from None
            raise BackendError(f"{self.base_url}: HTTP {status} for model {self.model!r}: {e.message[:300]}") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as e:
            raise _Retryable("malformed", f"unreadable response body: {str(e)[:200]}") from None
        try:
            choice = out.choices[0]
            usage = out.usage
            details = getattr(usage, "prompt_tokens_details", None)
            return dict(text=choice.message.content or "", prompt_tokens=int(usage.prompt_tokens),
                        completion_tokens=int(usage.completion_tokens),
                        finish_reason=choice.finish_reason or "stop",
                        cached_prompt_tokens=getattr(details, "cached_tokens", None),
                        structured=mode != "off", top_logprobs=_first_token_logprobs(choice))
        except (AttributeError, IndexError, TypeError, ValueError) as e:
            raise _Retryable("malformed", f"response without choices or usage: {e}") from None

    def _downgrade(self, mode: str) -> None:
        """The server refused this response_format: try the next form (the choice sticks for the run)."""
        if self._mode == mode:  # another request may have moved on already
            self._mode = {"json_schema": "llama.cpp", "llama.cpp": "off"}[mode]


def _first_token_logprobs(choice) -> tuple[tuple[str, float], ...]:
    """The first generated token's top alternatives, where the server sent logprobs (else ())."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return ()
    return tuple((str(t.token), float(t.logprob)) for t in (content[0].top_logprobs or ()))


def list_models(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> list[str]:
    """The model ids an OpenAI-compatible server serves (``GET /models``)."""
    import openai

    try:
        with openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=1) as c:
            return [m.id for m in c.models.list()]
    except openai.APIConnectionError:
        raise BackendError(f"{base_url}: cannot connect (is the server running?)") from None
    except openai.APIStatusError as e:
        raise BackendError(f"{base_url}: GET /models answered HTTP {e.status_code}") from None
