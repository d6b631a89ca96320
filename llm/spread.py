"""Several servers of one model as one backend: a pool of ``--base-url`` servers behind ``Backend``."""
from __future__ import annotations

import queue
import threading
from typing import Iterator, Sequence

from llm.base import Backend, ChatRequest, ChatResponse

_DONE = object()


class SpreadBackend:
    """Splits each ``chat_many`` call into contiguous runs of requests, one run per server, answered in parallel.

    Contiguous runs, not round-robin: the caller orders requests so that those sharing a prompt prefix
    (a cluster's shots) are adjacent, and a run keeps them on one server, whose prefix cache serves them.
    Each server's backend has its own retries and circuit breaker; one that gives up ends the call.
    """

    def __init__(self, backends: Sequence[Backend]):
        if not backends:
            raise ValueError("SpreadBackend needs at least one backend")
        self.backends = list(backends)
        self.identity = self.backends[0].identity

    def chat_many(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResponse]]:
        n = len(self.backends)
        size = -(-len(requests) // n) if requests else 0
        runs = [(i * size, requests[i * size:(i + 1) * size]) for i in range(n)]
        runs = [(b, offset, part) for b, (offset, part) in zip(self.backends, runs) if part]
        if len(runs) == 1:
            backend, _, part = runs[0]
            yield from backend.chat_many(part)
            return
        answers: queue.Queue = queue.Queue()

        def serve(backend: Backend, offset: int, part: Sequence[ChatRequest]) -> None:
            try:
                for j, response in backend.chat_many(part):
                    answers.put((offset + j, response))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                answers.put(e)
            finally:
                answers.put(_DONE)

        threads = [threading.Thread(target=serve, args=run, daemon=True) for run in runs]
        for t in threads:
            t.start()
        running = len(threads)
        while running:
            got = answers.get()
            if got is _DONE:
                running -= 1
            elif isinstance(got, BaseException):
                raise got
            else:
                yield got

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
