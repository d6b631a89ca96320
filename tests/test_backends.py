"""The OpenAI-compatible backend against the real llama.cpp server, with faults injected by a proxy in front of it."""
import dataclasses
import json
import os
import signal
import time

import pytest

from llm import BackendError, BackendOptions, BackendPool, CachedBackend, ChatRequest, ModelIdentity, RequestCache
from llm.openai_backend import ClientOptions, OpenAIBackend
from llm.server import LlamaServer
from tests.conftest import REPO, run_cli
from tests.fault_proxy import FaultProxy

TINY = ChatRequest(messages=(("user", "Reply with the single word: yes"),), max_tokens=4, temperature=0.0, seed=1)
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
JSON_REQUEST = ChatRequest(messages=(("user", "What is 2 + 3? Answer in JSON."),), max_tokens=30, temperature=0.0,
                           seed=1, json_schema=SCHEMA)
IDENTITY = ModelIdentity("qwen-0.5b", "", "openai")


def chat(backend, request: ChatRequest):
    """One request, blocking."""
    return next(response for _, response in backend.chat_many([request]))


def client(base_url: str, **options) -> OpenAIBackend:
    options = {"backoff": 0.05, "timeout": 30.0, **options}
    return OpenAIBackend(base_url, "qwen-0.5b", IDENTITY, None, ClientOptions(**options))


def upstream(server: LlamaServer) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.mark.llm
def test_every_fault_kind_is_retried_and_accounted(llama_server):
    proxy = FaultProxy(upstream(llama_server), sequence=["429", "500", "drop", "malformed", "truncated", "hang"],
                       hang_seconds=12).start()
    backend = client(proxy.base_url, timeout=8.0, max_retries=6)
    try:
        start = time.monotonic()
        response = chat(backend, TINY)
        elapsed = time.monotonic() - start
    finally:
        backend.close()
        proxy.stop()
    assert response.text.strip()
    assert response.errors == ("429", "500", "connection", "malformed", "malformed", "timeout")
    assert response.retries == 6
    assert elapsed >= 1.0 + 8.0  # Retry-After: 1 was honoured, and the hang was given up at the timeout


@pytest.mark.llm
def test_a_request_out_of_retries_stops_the_backend_with_one_line(llama_server):
    proxy = FaultProxy(upstream(llama_server), sequence=["500"] * 5).start()
    backend = client(proxy.base_url, max_retries=2)
    try:
        with pytest.raises(BackendError, match=r"request failed 3 times \(last 500: "):
            chat(backend, TINY)
    finally:
        backend.close()
        proxy.stop()


@pytest.mark.llm
def test_the_circuit_breaker_stops_a_run_when_failures_persist(llama_server):
    proxy = FaultProxy(upstream(llama_server), rate=1.0, kinds=("500",)).start()
    backend = client(proxy.base_url, max_retries=100, breaker_threshold=5, concurrency=3)
    try:
        start = time.monotonic()
        with pytest.raises(BackendError, match="failed attempts in a row"):
            list(backend.chat_many([dataclasses.replace(TINY, seed=s) for s in range(6)]))
        assert time.monotonic() - start < 15  # it stops, it does not spin through 100 retries
        with pytest.raises(BackendError, match="in a row"):  # and stays open
            chat(backend, TINY)
    finally:
        backend.close()
        proxy.stop()
    assert proxy.forwarded == 0


@pytest.mark.llm
def test_structured_output_auto_falls_back_to_the_form_the_server_accepts(llama_server):
    backend = client(llama_server.base_url, structured="auto")
    try:
        response = chat(backend, JSON_REQUEST)
    finally:
        backend.close()
    assert response.structured and json.loads(response.text)["answer"] == 5
    off = client(llama_server.base_url, structured="off")
    try:
        plain = chat(off, JSON_REQUEST)
    finally:
        off.close()
    assert not plain.structured  # counted on the parse-and-validate path


@pytest.mark.llm
def test_cached_backend_replays_answered_requests(llama_server, tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    backend = CachedBackend(client(llama_server.base_url, concurrency=2), cache)
    try:
        requests = [dataclasses.replace(TINY, seed=s) for s in (1, 2, 3)]
        first = dict(backend.chat_many(requests))
        again = dict(backend.chat_many(requests[:2] + [dataclasses.replace(TINY, seed=4)]))
    finally:
        backend.close()
    assert sorted(first) == [0, 1, 2] and not any(r.replayed for r in first.values())
    assert again[0].replayed and again[1].replayed and not again[2].replayed
    assert again[0].text == first[0].text and again[1].text == first[1].text
    assert len(cache) == 4


@pytest.mark.llm
def test_several_base_urls_are_one_pool_each_batch_spread_over_them(llama_server):
    """--base-url twice: one backend whose batches go to both servers, contiguous runs each, answers in order."""
    proxies = [FaultProxy(upstream(llama_server)).start() for _ in range(2)]
    pool = BackendPool(BackendOptions(engine="openai", base_url=[p.base_url for p in proxies]))
    try:
        backend = pool.open(None)
        requests = [dataclasses.replace(TINY, seed=s) for s in range(4)]
        answers = dict(backend.chat_many(requests))
    finally:
        pool.close()
        for p in proxies:
            p.stop()
    assert sorted(answers) == [0, 1, 2, 3] and all(a.text.strip() for a in answers.values())
    assert [p.forwarded for p in proxies] == [2, 2]
    assert pool.options.as_record()["base_url"] == [p.base_url for p in proxies]


@pytest.mark.llm
def test_the_pool_starts_and_stops_the_embedded_server():
    pool = BackendPool(BackendOptions(n_ctx=1024))
    backend = pool.open(None)
    server = pool.servers[0]
    assert server.base_url.startswith("http://127.0.0.1:")
    assert chat(backend, TINY).completion_tokens > 0
    assert pool.open("qwen2.5-coder-0.5b") is backend  # roles naming one model share one server
    pool.close()
    assert not server.healthy()


@pytest.mark.llm
def test_an_embedded_server_that_dies_is_named_in_the_error_that_stops_the_run():
    # e.g. llama.cpp's AMX kernels crashing it (SIGSEGV) on its first prompt: the run's one line says so
    pool = BackendPool(BackendOptions(n_ctx=1024))
    try:
        backend = pool.open(None)
        server = pool.servers[0]
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(BackendError, match=r"the embedded llama.cpp server exited with signal 9 \(SIGKILL\): "
                                               r".*\(log: .*llama-server-\d+\.log\); stopping"):
            chat(backend, TINY)
        assert backend._failures_in_a_row == 1  # stopped at the first failed attempt: no retry can reach a dead server
    finally:
        pool.close()


def test_a_server_that_cannot_load_the_model_is_a_one_line_error(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file")
    with pytest.raises(BackendError, match=r"llama.cpp server exited with code \d+ while loading junk.gguf"):
        LlamaServer(junk, alias="junk", log_dir=tmp_path).start()


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--engine", "openai"], "error: engine 'openai' needs --base-url"),
    (["--engine", "vllm", "--model", "Qwen/Qwen2.5-0.5B-Instruct"], "error: vLLM is not installed: pip install"),
    (["--base-url", "http://127.0.0.1:9/v1"], "error: http://127.0.0.1:9/v1: cannot connect"),
])
def test_backend_choices_that_cannot_work_are_one_line_errors(args, message, data_dir, tmp_path):
    result = run_cli("pipelines.synth", "--cluster", "6", "--data-dir", str(data_dir), "--store",
                     str(tmp_path / "s"), "--no-progress", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert REPO.is_dir()
