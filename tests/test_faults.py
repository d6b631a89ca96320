"""A synth run through a fault-injecting proxy in front of a llama.cpp server started by hand (--base-url).

Every kind of fault that answers at once is injected (429 with Retry-After, 500,
a dropped connection, a malformed and a truncated body), then a fifth of the
remaining requests fail at random.  A hang past the timeout is the same retry
path with a wait; test_backends checks it on one short request, not here, where
the timeout must exceed the slowest real request.  The run must finish with
every item kept or rejected with a reason, nothing lost, nothing duplicated,
and every injected fault accounted as a retry of its kind.
"""
import json

import pytest

from store import DatasetStore
from tests.conftest import REPO, run_cli
from tests.fault_proxy import CLIENT_KIND, FaultProxy
from tests.test_end_to_end import small_cluster  # noqa: F401 - a fixture
from tests.test_store import REQUIRED

pytestmark = pytest.mark.llm
TIMEOUT = 300  # seconds per attempt: far above the slowest real request on 2 cores, so no request times out


@pytest.fixture
def proxy(llama_server):
    kinds = ["429", "500", "drop", "malformed", "truncated"]
    sequence = [k for kind in kinds for k in (None, kind)]  # every second request faulty until each kind was seen
    p = FaultProxy(f"http://127.0.0.1:{llama_server.port}", rate=0.2, kinds=tuple(kinds), seed=3,
                   sequence=sequence).start()
    yield p
    p.stop()


def test_synth_through_faults_loses_and_duplicates_nothing(tmp_path, data_dir, small_cluster, proxy):  # noqa: F811
    cluster, targets = small_cluster
    store = tmp_path / "store"
    args = ["pipelines.synth", "--cluster", str(cluster), "--store", str(store), "--data-dir", str(data_dir),
            "--no-progress", "--base-url", proxy.base_url, "--concurrency", "1", "--shots", "3",
            "--request-timeout", str(TIMEOUT), "--per-misconception", "2",
            "--mode", "question", "--checks", "judge",  # question mode, the rubric judge: every role is used
            "--min-score", "3"]  # the 0.5B judge is harsh and noisy; the threshold itself is checked below
    result = run_cli(*args, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "keep rate" in result.stdout and "retries" in result.stdout

    record = json.loads(next((store / "versions").glob("*.json")).read_text())
    assert record["status"] == "complete" and record["attempted"] == 4
    assert record["counts"]["kept"] + record["counts"]["rejected"] == 4
    assert record["models"]["generator"] == {"name": "qwen-0.5b", "weights_sha256": "", "backend": "openai"}

    # every injected fault was retried and counted under its kind
    usage = record["usage"]
    assert sum(u["retries"] for u in usage.values()) == sum(proxy.injected.values())
    assert set(proxy.injected) == {"429", "500", "drop", "malformed", "truncated"}
    failures: dict[str, int] = {}
    for u in usage.values():
        for kind, n in u["failures"].items():
            failures[kind] = failures.get(kind, 0) + n
    for kind, n in proxy.injected.items():
        assert failures.get(CLIENT_KIND[kind], 0) >= n, (kind, failures)
    assert sum(u["structured"] for u in usage.values()) > 0  # auto found the schema form llama.cpp accepts
    assert record["usage_by_model"]["qwen-0.5b"]["requests"] == sum(u["requests"] for u in usage.values())

    s = DatasetStore.open(store)
    kept, rejected = s.read("train", None).to_pylist(), s.read("rejected", None).to_pylist()
    s.close()
    everything = kept + rejected
    assert len({r["QuestionId"] for r in everything}) == len({r["ItemKey"] for r in everything}) == 4
    assert sorted(r["MisconceptionId"] for r in everything) == sorted(list(targets) * 2)
    assert all(r["RejectStage"] and r["RejectReason"] for r in rejected)
    assert len(kept) >= 1  # sampling is seeded; the faults change no answer
    for r in kept:
        assert set(REQUIRED) <= set(r)
        assert r["MisconceptionId"] in targets and r["ClusterId"] == cluster
        assert r["JudgeScore"] >= 3 and r["JudgeReason"] and r["Rationale"].strip()
        assert r["QuestionText"] and len(r["OtherAnswerTexts"]) == 2
        assert r["GeneratorModel"] == "qwen-0.5b" and r["PromptVersion"].startswith("generate:")

    again = run_cli(*args, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert REPO.is_dir()
