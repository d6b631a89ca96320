"""``--executor ray``: the plan's item stages run as tasks on Ray workers; this process commits.

The plan (cluster order) is cut into **tasks**: consecutive items of one cluster, at most
``--task-items`` each (default 8), so a task's requests share its cluster's many-shot prefix.  Each
**worker** is a Ray actor that holds what is costly to start: its backends (an embedded llama.cpp
server on its CPUs, a vLLM engine on its GPU, or its share of the ``--base-url`` servers), the
embedder and the stages.  A task runs the stages that look at one item at a time (generation, the
checks, the rationale) and returns the finished items, the stages' counts and token accounting, and
the LLM answers it received.

The driver (this process) keeps every task of a window in flight over the workers, stores each
task's answers in the run's request cache as soon as the task returns, and commits tasks in plan
order: it runs the ordered stages (near-duplicate, repeat), which compare an item with every earlier
one, and is the only writer of the store.  So the rows are those of ``--executor local`` for the same
answers, whatever order tasks finish in.

Faults: a worker that dies (killed, out of memory, its node lost) is restarted by Ray and its task is
retried (``MAX_RESTARTS``); the task's answers received before the kill are lost with it (work in
flight), nothing was committed, so no row is duplicated.  A killed driver loses the tasks in flight
and those waiting for an earlier one; the same command continues: committed items are skipped and the
answers the driver had received are shipped to the new workers and replayed.

Why actors, not plain tasks or Ray Data: a worker's engine (a llama.cpp server, a vLLM instance
holding a GPU) takes seconds to minutes to start, so it must outlive a task; actors with
``max_restarts``/``max_task_retries`` give exactly the retry we need; and the ordered commit is a
loop over ``ray.wait``, a few lines, where Ray Data's streaming would hide the order we must keep.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Iterator, TextIO

from factory.config import SynthConfig
from factory.engine import Engine, RunData, TaskResult, make_context, open_backends
from factory.stages import stages_for
from generators import Target
from llm import BackendError, BackendOptions, BackendPool, ReplayCache, RequestCache, cache_dir

NAMESPACE = "misconception-factory"
MAX_RESTARTS = 3  # a dead worker is restarted, and its task retried, this many times
EMBEDDED_WORKER_CPUS = 2  # CPUs (llama.cpp threads) of an embedded-engine worker unless --threads says


def reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must accept a connection: ray.init would wait for it for minutes."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise BackendError(f"--ray-address {address}: cannot connect to Ray ({e.strerror or e}); is the cluster "
                           "running (ray start --head)?") from None


def split_tasks(todo: list[Target], task_items: int) -> list[list[Target]]:
    """Consecutive items of one cluster, at most ``task_items`` per task, in plan order."""
    tasks: list[list[Target]] = []
    for target in todo:
        if tasks and tasks[-1][-1].cluster_id == target.cluster_id and len(tasks[-1]) < task_items:
            tasks[-1].append(target)
        else:
            tasks.append([target])
    return tasks


def worker_resources(options: BackendOptions, cluster: dict, requested: int | None) -> tuple[int, float, float]:
    """(workers, CPUs each, GPUs each) for the engine on a cluster with these resources."""
    cpus_total, gpus_total = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    if options.engine == "vllm":
        gpus = float(options.vllm_args.get("tensor_parallel_size", 1))
        if gpus_total < gpus:
            raise BackendError(f"--engine vllm on Ray needs GPUs: the cluster has {gpus_total:g}, an engine {gpus:g}")
        return requested or int(gpus_total // gpus), 1.0, gpus
    if options.engine == "openai":
        return requested or len(options.urls), 1.0, 0.0
    cpus = float(min(options.threads or EMBEDDED_WORKER_CPUS, max(1, int(cpus_total))))
    return requested or max(1, int(cpus_total // cpus)), cpus, 0.0


def worker_backend(options: BackendOptions, index: int, cpus: float) -> BackendOptions:
    """A worker's share: its CPUs as llama.cpp threads, or one server of a --base-url pool."""
    if options.engine == "embedded":
        return replace(options, threads=max(1, int(cpus)))
    if options.engine == "openai" and len(options.urls) > 1:
        return replace(options, base_url=options.urls[index % len(options.urls)])
    return options


class SynthWorker:
    """A Ray actor (``ray.remote(SynthWorker)``): backends, embedder and stages, started once; tasks in turn."""

    def __init__(self, config: SynthConfig, data: RunData, models: dict[str, str], answers: dict[str, str],
                 index: int, cpus: float):
        self.pid, self.index, self.task, self.error = os.getpid(), index, None, None
        try:
            import torch

            torch.set_num_threads(max(1, int(cpus)))
            from embeddings import Embedder

            config = replace(config, backend=worker_backend(config.backend, index, cpus))
            self.cache = ReplayCache(answers) if config.request_cache else None
            self.pool = BackendPool(config.backend, self.cache)
            stages = stages_for(config)
            self.models = models
            backends = open_backends(self.pool, config, stages, models)
            ctx = make_context(data, Embedder(cache=cache_dir()), config, backends, {})
            self.engine = Engine(config, stages, ctx, models)
            self.engine.setup(self.engine.item_stages)
        except BackendError as e:  # told to the driver by status(): one line, not a traceback
            self.error = str(e)

    def status(self) -> dict:
        return {"index": self.index, "pid": self.pid, "task": self.task, "error": self.error}

    def run_task(self, index: int, targets: list[Target], version: str) -> TaskResult:
        if self.error:
            raise BackendError(self.error)
        self.task = index
        result = self.engine.run_task(index, targets, version)
        result.answers = self.cache.take_new() if self.cache is not None else []
        self.task = None
        return result


@dataclass
class RayExecutor:
    """``factory.executors.Executor`` on Ray: tasks over worker actors, results in plan order."""

    config: SynthConfig
    data: RunData
    models: dict[str, str]
    cache: RequestCache | None
    err: TextIO
    opens_backends: bool = False  # each worker opens its own
    actors: list = field(default_factory=list)
    tasks: list[list[Target]] = field(default_factory=list)
    pids: list[set[int]] = field(default_factory=list)
    connected: bool = False
    cluster: dict = field(default_factory=dict)
    seconds: float = 0.0  # summed task time on the workers

    def start(self, engine: Engine, todo: list[Target]) -> None:
        """Connect to Ray (or start a local one), start the workers, check that each is ready."""
        try:
            import ray
        except ImportError:
            raise BackendError("--executor ray needs Ray: pip install 'misconception-factory[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            address = self.config.ray_address
            reachable(address or os.environ.get("RAY_ADDRESS"))
            try:
                ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
                         **({} if address else {"include_dashboard": False}))
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise BackendError(f"--ray-address {address}: cannot connect to Ray: {str(e).splitlines()[0]}") from None
            self.connected = True
        self.cluster = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}
        self.tasks = split_tasks(todo, self.config.task_items)
        count, cpus, gpus = worker_resources(self.config.backend, self.cluster, self.config.ray_workers)
        count = min(count, len(self.tasks))
        answers = ray.put(self.cache.answers() if self.cache is not None else {})
        data = ray.put(self.data)
        self._arguments = (answers, data)  # held for the run: a restarted worker is constructed from them again
        worker = ray.remote(SynthWorker)
        prefix = f"synth-{os.getpid()}-{int(time.time())}"
        self.actors = [worker.options(name=f"{prefix}-{i}", namespace=NAMESPACE, num_cpus=cpus, num_gpus=gpus,
                                      max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS, max_concurrency=2)
                       .remote(self.config, data, self.models, answers, i, cpus) for i in range(count)]
        self.err.write(f"ray: {count} workers ({cpus:g} CPU{'' if cpus == 1 else 's'}"
                       f"{f', {gpus:g} GPU' if gpus else ''} each) for {len(self.tasks)} tasks of up to "
                       f"{self.config.task_items} items on a cluster of {self._resources()}\n")
        statuses = self._get([a.status.remote() for a in self.actors])
        failed = [s for s in statuses if s["error"]]
        if failed:
            raise BackendError(f"ray worker {failed[0]['index']}: {failed[0]['error']}")
        self.pids = [{s["pid"]} for s in statuses]

    def results(self, engine: Engine, version: str) -> Iterator[TaskResult]:
        """Each task's result in plan order, whatever order the workers finish in."""
        ray = self.ray
        pending = deque(enumerate(self.tasks))
        idle = deque(range(len(self.actors)))
        in_flight: dict = {}  # ObjectRef -> worker index
        finished: dict[int, TaskResult] = {}
        window = 4 * len(self.actors)  # tasks ahead of the next to commit: bounds what waits in memory
        next_commit = 0
        while next_commit < len(self.tasks):
            while idle and pending and pending[0][0] < next_commit + window:
                index, targets = pending.popleft()
                worker = idle.popleft()
                in_flight[self.actors[worker].run_task.remote(index, targets, version)] = worker
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                worker = in_flight.pop(ref)
                idle.append(worker)
                result = self._get(ref)
                if self.cache is not None and result.answers:
                    self.cache.put_entries(result.answers)  # received answers survive a killed driver
                self.pids[worker].add(result.pid)
                self.seconds += result.seconds
                finished[result.index] = result
            while next_commit in finished:
                yield finished.pop(next_commit)
                next_commit += 1

    def _get(self, refs):
        ray = self.ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, BackendError):
                raise BackendError(str(e.cause)) from None
            raise
        except ray.exceptions.RayActorError as e:
            first = (str(e).strip().splitlines() or ["no message"])[0]
            raise BackendError(f"a ray worker died and could not be restarted ({MAX_RESTARTS} restarts): {first[:300]}") from None

    def _resources(self) -> str:
        return ", ".join(f"{self.cluster[k]:g} {k}" for k in ("CPU", "GPU") if self.cluster.get(k))

    def record(self) -> dict:
        return {"name": "ray", "address": self.config.ray_address or "local", "cluster": self.cluster,
                "workers": len(self.actors), "tasks": len(self.tasks), "task_items": self.config.task_items,
                "worker_restarts": sum(len(p) - 1 for p in self.pids), "task_seconds": round(self.seconds, 1)}

    def close(self) -> None:
        ray = getattr(self, "ray", None)
        if ray is None:
            return
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - closing must reach the others and the shutdown
                pass
        self.actors = []
        if self.connected:
            ray.shutdown()
            self.connected = False
