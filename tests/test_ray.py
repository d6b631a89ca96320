"""--executor ray on a real local Ray (2 CPUs, no GPU) against the embedded llama.cpp server on each worker.

One run is killed (the driver, SIGKILL, after its first commit); the same command continues while
one of its workers is killed mid-task (SIGKILL of the actor's process): Ray restarts it and retries
the task.  The store must end with every planned item exactly once, and a local run over the same
answers (the driver's request cache) must make the same rows.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from factory.ray_executor import NAMESPACE, split_tasks, worker_resources
from generators import Target
from llm import BackendError, BackendOptions
from tests.conftest import REPO
from tests.test_end_to_end import (CONTENT, copy_database, distractor_command, journal_lines, rows,  # noqa: F401
                                   server_processes, small_cluster)

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


def targets(clusters):
    return [Target(misconception_id=i, misconception_name="m", cluster_id=c, item_index=0, seed=0, shots=())
            for i, c in enumerate(clusters)]


def test_tasks_are_runs_of_one_cluster_in_plan_order():
    tasks = split_tasks(targets([3, 3, 3, 5, 5, 3]), task_items=2)
    assert [[t.cluster_id for t in task] for task in tasks] == [[3, 3], [3], [5, 5], [3]]
    assert [t.misconception_id for task in tasks for t in task] == list(range(6))


def test_workers_follow_the_engine_and_the_cluster():
    cluster = {"CPU": 16.0, "GPU": 4.0}
    assert worker_resources(BackendOptions(), cluster, None) == (8, 2.0, 0.0)  # embedded: a 2-thread server each
    assert worker_resources(BackendOptions(threads=4), cluster, None) == (4, 4.0, 0.0)
    assert worker_resources(BackendOptions(engine="vllm"), cluster, None) == (4, 1.0, 1.0)  # one engine per GPU
    tp2 = BackendOptions(engine="vllm", vllm_args={"tensor_parallel_size": 2})
    assert worker_resources(tp2, cluster, None) == (2, 1.0, 2.0)
    pool = BackendOptions(engine="openai", base_url=["http://a/v1", "http://b/v1"])
    assert worker_resources(pool, cluster, None) == (2, 1.0, 0.0)  # one worker per server
    assert worker_resources(BackendOptions(), {"CPU": 1.0}, None) == (1, 1.0, 0.0)
    with pytest.raises(BackendError, match="needs GPUs"):
        worker_resources(BackendOptions(engine="vllm"), {"CPU": 8.0}, None)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray head with 2 CPUs, started by this test process; drivers connect to its address."""
    context = ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, namespace=NAMESPACE,
                       object_store_memory=200 * 1024 * 1024, logging_level="WARNING")
    yield context.address_info["gcs_address"]
    ray.shutdown()


def kill_a_busy_worker(proc, timeout: float = 600) -> int:
    """SIGKILL the process of a synth worker while it runs a task; returns the task's index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for found in ray.util.list_named_actors(all_namespaces=True):
            if not found["name"].startswith("synth-"):
                continue
            try:
                actor = ray.get_actor(found["name"], namespace=found["namespace"])
                status = ray.get(actor.status.remote(), timeout=60)
            except (ValueError, ray.exceptions.RayError):
                continue  # gone, or not yet started
            if status["task"] is not None:
                os.kill(status["pid"], signal.SIGKILL)
                return status["task"]
        time.sleep(0.5)
    pytest.fail("no worker ran a task:\n" + (proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ""))


@pytest.mark.ray
@pytest.mark.llm
def test_ray_run_survives_killed_driver_and_worker_and_makes_the_local_rows(tmp_path, data_dir, small_cluster,
                                                                           ray_cluster):
    _, chosen = small_cluster
    listed = tmp_path / "targets.txt"
    listed.write_text("\n".join(map(str, sorted(chosen))) + "\n")
    store = tmp_path / "ray-store"
    cmd = distractor_command(data_dir, store, listed, "--per-misconception", "2", "--seed", "7", "--executor", "ray",
                             "--ray-address", ray_cluster, "--ray-workers", "2", "--threads", "1", "--task-items", "1")
    servers_before = server_processes()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # 1. The driver, killed once it has committed an item.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None and journal_lines(store) < 1:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stderr.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # 2. The same command continues; one of its workers is killed mid-task.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    kill_a_busy_worker(proc)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "ray: 2 workers" in err.decode()

    kept, versions = rows(store)
    rejected, _ = rows(store, "rejected")
    everything = kept + rejected
    assert len({r["QuestionId"] for r in everything}) == len(everything), "duplicate QuestionId"
    assert len({r["ItemKey"] for r in everything}) == len(everything) == 4, "every planned item exactly once"
    last = max(versions, key=lambda v: v["started"])
    assert last["status"] == "complete" and last["skipped_done"] >= 1
    assert last["executor"]["name"] == "ray" and last["executor"]["workers"] == 2
    assert last["executor"]["worker_restarts"] >= 1, last["executor"]
    assert last["executor"]["tasks"] == last["attempted"]  # --task-items 1
    assert [s["name"] for s in last["stages"]] == ["distract", "round-trip", "working", "repeat"]
    assert sum(s["in"] for s in last["stages"] if s["name"] == "distract") == last["attempted"]

    # 3. The local executor over the same answers makes the same rows, every answer replayed.
    reference, answers = tmp_path / "local-store", tmp_path / "answers.sqlite"
    copy_database(store / ".cache" / "requests.sqlite", answers)
    local = subprocess.run(distractor_command(data_dir, reference, listed, "--per-misconception", "2", "--seed", "7",
                                              "--request-cache", str(answers)),
                           cwd=REPO, capture_output=True, text=True, timeout=900)
    assert local.returncode == 0, local.stderr[-3000:]
    ref_kept, ref_versions = rows(reference)
    ref_rejected, _ = rows(reference, "rejected")
    assert all(u["replayed"] == u["requests"] for u in ref_versions[0]["usage"].values())
    assert ref_versions[0]["executor"] == {"name": "local"}
    pick = lambda rs: [{c: r[c] for c in CONTENT} for r in rs]  # noqa: E731
    assert pick(ref_kept) == pick(kept)
    assert [(r["ItemKey"], r["RejectStage"], r["RejectReason"]) for r in ref_rejected] == \
           [(r["ItemKey"], r["RejectStage"], r["RejectReason"]) for r in rejected]
    time.sleep(2.0)
    assert server_processes() <= servers_before, "a worker's llama.cpp server outlived its worker"
    record = json.loads((store / "versions" / f"{last['id']}.json").read_text())
    assert record["executor"]["cluster"]["CPU"] == 2.0

