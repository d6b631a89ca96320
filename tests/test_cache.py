"""The request cache's key: every field that decides an answer changes it; nothing else does."""
import dataclasses

import pytest

from llm import ChatRequest, ChatResponse, ModelIdentity, ReplayCache, RequestCache, request_key

MODEL = ModelIdentity("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", "1d9614638d18", "llama.cpp")
REQUEST = ChatRequest(messages=(("system", "You write questions."), ("user", "One about fractions.")),
                      max_tokens=300, temperature=0.7, top_p=0.95, seed=42,
                      json_schema={"type": "object", "properties": {"q": {"type": "string"}}},
                      prompt_version="generate:abc123")


def test_an_unchanged_request_has_the_same_key():
    copy = ChatRequest(**{f.name: getattr(REQUEST, f.name) for f in dataclasses.fields(REQUEST)})
    assert request_key(MODEL, REQUEST) == request_key(ModelIdentity(*dataclasses.astuple(MODEL)), copy)


@pytest.mark.parametrize("change", [
    {"messages": (("system", "You write questions."), ("user", "One about decimals."))},
    {"messages": (("system", "You write questions!"), ("user", "One about fractions."))},
    {"messages": (("user", "You write questions."), ("user", "One about fractions."))},
    {"max_tokens": 301}, {"temperature": 0.8}, {"top_p": 0.9}, {"seed": 43},
    {"json_schema": {"type": "object", "properties": {"q": {"type": "integer"}}}}, {"json_schema": None},
    {"prompt_version": "generate:abc124"},
])
def test_changing_any_request_field_changes_the_key(change):
    assert request_key(MODEL, dataclasses.replace(REQUEST, **change)) != request_key(MODEL, REQUEST)


@pytest.mark.parametrize("change", [{"name": "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"}, {"weights": "cc324af070c2"},
                                    {"backend": "vllm"}])
def test_changing_the_model_identity_changes_the_key(change):
    assert request_key(dataclasses.replace(MODEL, **change), REQUEST) != request_key(MODEL, REQUEST)


def test_responses_persist_across_connections(tmp_path):
    path = tmp_path / "c" / "requests.sqlite"
    cache = RequestCache(path)
    key = request_key(MODEL, REQUEST)
    answer = ChatResponse(text='{"q": "1/2 + 1/3?"}', prompt_tokens=120, completion_tokens=9, seconds=1.5,
                          structured=True, retries=2, errors=("429", "timeout"))
    assert cache.get(key) is None
    cache.put(key, MODEL, REQUEST, answer)
    cache.close()
    again = RequestCache(path)
    hit = again.get(key)
    assert hit.replayed and hit.text == answer.text and hit.completion_tokens == 9 and hit.structured
    assert hit.retries == 0 and hit.errors == ()  # transport history belongs to the original run's accounting
    assert len(again) == 1
    assert again.requests()[0]["messages"][1] == ["user", "One about fractions."]


def test_an_unreadable_cache_file_is_a_one_line_error(tmp_path):
    from llm import BackendError

    bad = tmp_path / "requests.sqlite"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(BackendError, match="request cache .*requests.sqlite: .*; move the file aside"):
        RequestCache(bad)


def filled_cache(path, entries=200):
    """A cache file of many pages (about 1 KB an answer), closed."""
    cache = RequestCache(path)
    for seed in range(entries):
        request = dataclasses.replace(REQUEST, seed=seed)
        cache.put(request_key(MODEL, request), MODEL, request,
                  ChatResponse(text=f"answer {seed} " + "x" * 1000, prompt_tokens=5, completion_tokens=1))
    cache.close()
    return path


def test_a_damaged_page_behind_an_intact_header_is_refused_at_open(tmp_path):
    from llm import BackendError

    path = filled_cache(tmp_path / "requests.sqlite")
    data = bytearray(path.read_bytes())
    assert data.startswith(b"SQLite format 3") and len(data) > 40 * 4096
    data[20 * 4096:24 * 4096] = b"\xa5" * (4 * 4096)  # four pages in the middle; the header page intact
    path.write_bytes(bytes(data))
    with pytest.raises(BackendError) as caught:
        RequestCache(path, without="--no-request-cache")
    message = str(caught.value)
    assert message.startswith(f"request cache {path}: damaged (") and "\n" not in message
    assert "move the file aside" in message and "--no-request-cache" in message


def test_a_sqlite_error_while_in_use_is_a_one_line_backend_error(tmp_path):
    import sqlite3

    from llm import BackendError

    class Broken:
        def execute(self, *args):
            raise sqlite3.DatabaseError("database disk image is malformed")

        executemany = execute

    cache = RequestCache(filled_cache(tmp_path / "requests.sqlite", entries=2))
    cache._db = Broken()  # the file damaged under the open cache
    key = request_key(MODEL, REQUEST)
    answer = ChatResponse(text="a", prompt_tokens=1, completion_tokens=1)
    for call in (lambda: cache.get(key), lambda: cache.put(key, MODEL, REQUEST, answer),
                 lambda: cache.put_entries([(key, "m", "{}", "{}")]), cache.answers, cache.requests, cache.__len__):
        with pytest.raises(BackendError, match="database disk image is malformed; move the file aside"):
            call()


def test_answers_travel_to_a_replay_cache_and_its_new_ones_come_back(tmp_path):
    """A Ray worker's cache: it replays the driver's answers and hands back only what it received itself."""
    driver = RequestCache(tmp_path / "requests.sqlite")
    first, second = REQUEST, dataclasses.replace(REQUEST, seed=43)
    driver.put(request_key(MODEL, first), MODEL, first, ChatResponse(text="one", prompt_tokens=5, completion_tokens=1))
    worker = ReplayCache(driver.answers())
    hit = worker.get(request_key(MODEL, first))
    assert hit.replayed and hit.text == "one"
    assert worker.get(request_key(MODEL, second)) is None
    worker.put(request_key(MODEL, second), MODEL, second, ChatResponse(text="two", prompt_tokens=5, completion_tokens=1))
    assert worker.get(request_key(MODEL, second)).text == "two"
    new = worker.take_new()
    assert [entry[0] for entry in new] == [request_key(MODEL, second)] and worker.take_new() == []
    driver.put_entries(new)
    assert len(driver) == 2 and driver.get(request_key(MODEL, second)).text == "two"
    assert driver.requests()[1]["sampling"]["seed"] == 43  # the request travels with the answer, for audits
