"""Executors run a plan's tasks and hand back their results in plan order; one interface, two kinds.

- ``LocalExecutor`` (``--executor local``): task after task (``--batch-size`` items each) in this process,
  on the driver's own engine.
- ``RayExecutor`` (``--executor ray``, ``factory.ray_executor``): tasks on Ray workers, each holding its
  own engine; the answers a task received go into the run's request cache as it returns.

Both have the same methods: ``start(engine, todo)`` (set up; raise ``BackendError`` before any item when
that fails), ``results(engine, version)`` (``TaskResult`` of each task, in plan order), ``record()`` (what
the version record says of the executor) and ``close()``. ``opens_backends`` says whether the driver's
engine needs its own backends (local) or the workers open theirs (Ray).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from factory.engine import Engine, TaskResult
from generators import Target


class Executor(Protocol):
    opens_backends: bool

    def start(self, engine: Engine, todo: list[Target]) -> None: ...

    def results(self, engine: Engine, version: str) -> Iterator[TaskResult]: ...

    def record(self) -> dict: ...

    def close(self) -> None: ...


def batches(todo: list[Target], size: int) -> list[list[Target]]:
    return [todo[i:i + size] for i in range(0, len(todo), size)]


@dataclass
class LocalExecutor:
    batch_size: int
    opens_backends: bool = True
    tasks: list[list[Target]] = field(default_factory=list)

    def start(self, engine: Engine, todo: list[Target]) -> None:
        engine.setup(engine.item_stages)
        self.tasks = batches(todo, self.batch_size)

    def results(self, engine: Engine, version: str) -> Iterator[TaskResult]:
        for index, targets in enumerate(self.tasks):
            yield engine.run_task(index, targets, version)

    def record(self) -> dict:
        return {"name": "local"}

    def close(self) -> None:
        pass
