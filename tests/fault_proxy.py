"""A fault-injecting HTTP proxy for tests: sits on 127.0.0.1 in front of a real OpenAI-compatible server.

For a chosen fraction of chat-completion requests (after an optional explicit
sequence), it answers with one fault instead of forwarding, rotating over the kinds:

- ``429``: Too Many Requests with ``Retry-After: 1``;
- ``500``: Internal Server Error;
- ``hang``: reads the request and answers nothing for ``hang_seconds`` (past the client's timeout);
- ``drop``: closes the connection without a response;
- ``malformed``: 200 with a body that is not JSON;
- ``truncated``: forwards, then returns the first half of the upstream's JSON body.

Everything else (and ``GET /v1/models``) is forwarded unchanged.  ``injected``
counts the faults by kind, so tests can check that each one was accounted.
"""
from __future__ import annotations

import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("429", "500", "hang", "drop", "malformed", "truncated")
# what the client should record for each injected kind
CLIENT_KIND = {"429": "429", "500": "500", "hang": "timeout", "drop": "connection", "malformed": "malformed",
               "truncated": "malformed"}


class FaultProxy:
    def __init__(self, upstream: str, rate: float = 0.0, kinds: tuple[str, ...] = KINDS, seed: int = 0,
                 sequence: list[str | None] | None = None, hang_seconds: float = 30.0):
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:8080 (no /v1)
        self.rate, self.kinds, self.hang_seconds = rate, kinds, hang_seconds
        self.sequence = list(sequence) if sequence is not None else None
        self._rng = random.Random(seed)
        self._next_kind = 0
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def choose(self) -> str | None:
        with self._lock:
            if self.sequence:
                return self.sequence.pop(0)
            if self._rng.random() >= self.rate:
                return None
            kind = self.kinds[self._next_kind % len(self.kinds)]
            self._next_kind += 1
            return kind

    def forward(self, method: str, path: str, body: bytes | None, headers) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.upstream + path, data=body, method=method,
                                         headers={k: v for k, v in headers.items()
                                                  if k.lower() in ("content-type", "authorization")})
        try:
            with urllib.request.urlopen(request, timeout=600) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                status, _, body = proxy.forward("GET", self.path, None, self.headers)
                self.reply(status, body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = proxy.choose() if self.path.endswith("/chat/completions") else None
                if kind is None:
                    with proxy._lock:
                        proxy.forwarded += 1
                    status, _, out = proxy.forward("POST", self.path, body, self.headers)
                    return self.reply(status, out)
                with proxy._lock:
                    proxy.injected[kind] += 1
                if kind == "429":
                    self.reply(429, b'{"error": {"message": "rate limited (injected)"}}', {"Retry-After": "1"})
                elif kind == "500":
                    self.reply(500, b'{"error": {"message": "internal error (injected)"}}')
                elif kind == "hang":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                elif kind == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif kind == "malformed":
                    self.reply(200, b"<html>not json (injected)")
                elif kind == "truncated":
                    _, _, out = proxy.forward("POST", self.path, body, self.headers)
                    self.reply(200, out[: len(out) // 2])

        return Handler
