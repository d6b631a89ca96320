"""Run a plan through the stages: batches in plan order, each stage over a batch's live items, then commit.

Items go through the stages in batches, in plan (cluster) order: all requests of a stage for a batch
go out together, so requests that share a cluster's many-shot prefix reach the engine next to each
other (prefix-aware scheduling) and a batching engine sees them together.  Every LLM answer is
persisted in the request cache as it arrives, and finished items are journalled in plan order at the
end of each batch (see ``store``): a kill loses only computation in flight, and a re-run replays the
cached answers and ends with the same rows.

The stages up to the last one that needs the whole run's order (``ordered = True``: the near-duplicate
and repeat checks, last in every mode) work on each item alone; an *executor* runs them: here, batch after
batch in this process (``--executor local``), or as tasks on Ray workers (``--executor ray``,
``factory.ray_executor``).  The ordered stages and the commit run here, in plan order, either way.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Iterator, TextIO

from factory.config import SynthConfig
from factory.plan import item_key, plan
from factory.report import Progress, summary_table
from factory.stage import Context, Item
from factory.stages import all_stage_columns, stages_for
from factory.world import ConfigError, World, prepare
from generators import Target
from judges import NearDuplicateIndex
from llm import BackendError, BackendPool, RequestCache, Usage
from store import DatasetStore, VersionWriter, now_iso


@dataclass
class StageCount:
    seen: int = 0  # live items the stage worked on
    rejected: int = 0

    def as_dict(self) -> dict:
        return {"in": self.seen, "passed": self.seen - self.rejected, "rejected": self.rejected}


def checks_key(stages: list, models: dict[str, str]) -> str:
    """What decides the verdicts on a generated item: every stage after generation, its prompt version,
    its role's model and its settings. A re-run with another key judges its items again."""
    spec = [{"stage": s.name, "version": getattr(s, "version", ""), "model": models.get(s.role or "", ""),
             "settings": s.settings() if hasattr(s, "settings") else {}} for s in stages[1:]]
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checks_key_of_config(config: SynthConfig, models: dict[str, str]) -> str:
    return checks_key(stages_for(config), models)


@dataclass
class Engine:
    """One run's stages and their context; ``run_batch`` makes a batch of items and returns them finished."""

    config: SynthConfig
    stages: list
    ctx: Context
    models: dict[str, str]  # role -> model identity
    counts: dict[str, StageCount] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {s.name: StageCount() for s in self.stages}
        self.checks_key = checks_key(self.stages, self.models)
        llm_stages = [s for s in self.stages if s.role]
        self.prompt_version = " ".join(f"{s.name}:{s.version}" for s in llm_stages)
        split = len(self.stages)
        while split and getattr(self.stages[split - 1], "ordered", False):
            split -= 1
        self.item_stages, self.ordered_stages = self.stages[:split], self.stages[split:]

    def setup(self, stages: list | None = None) -> None:
        for stage in self.stages if stages is None else stages:
            if hasattr(stage, "setup"):
                stage.setup(self.ctx)

    def row(self, target: Target, version: str) -> dict:
        suffix = f"d{target.item_index}" if target.base is not None else str(target.item_index)
        return {
            "QuestionId": f"syn-{version}-{target.misconception_id}-{suffix}",
            "MisconceptionId": target.misconception_id, "MisconceptionName": target.misconception_name,
            "ClusterId": target.cluster_id, "Seed": target.seed, "ItemIndex": target.item_index,
            "ItemKey": item_key(target, self.models["generator"], self.config.hide_fold),
            "ChecksKey": self.checks_key, "Mode": self.config.mode, "Checks": [],
            "ShotIds": [s.key for s in target.shots], "RealRowsHidden": str(self.config.hide_fold or ""),
            "GeneratorModel": self.models["generator"], "SolverModel": self.models["solver"],
            "JudgeModel": self.models["judge"], "TeacherModel": self.models["teacher"],
            "PromptVersion": self.prompt_version, "Version": version, "OtherAnswerTexts": [],
            "RejectStage": "", "RejectReason": "", "RawOutput": "", "Rationale": "", "JudgeReason": "",
            "CreatedAt": now_iso(),
        }

    def start(self, targets: list[Target], version: str) -> list[Item]:
        return [Item(t, self.row(t, version)) for t in targets]

    def run_stages(self, items: list[Item], stages: list, progress: Progress | None = None) -> None:
        """Run stages over the items still alive, counting what each stage saw and rejected."""
        for stage in stages:
            alive = [it for it in items if it.reject is None]
            if alive:
                stage.run(alive, self.ctx)
                count = self.counts[stage.name]
                count.seen += len(alive)
                count.rejected += sum(1 for it in alive if it.reject is not None)
            if progress:
                progress.refresh()
        self.ctx.end_batch()

    def run_batch(self, targets: list[Target], version: str, progress: Progress | None = None) -> list[Item]:
        items = self.start(targets, version)
        self.run_stages(items, self.stages, progress)
        return items

    def stage_record(self) -> list[dict]:
        return [{"name": s.name, "role": s.role, "model": self.models.get(s.role or ""),
                 "version": getattr(s, "version", None), "settings": s.settings() if hasattr(s, "settings") else {},
                 **self.counts[s.name].as_dict()} for s in self.stages]


def commit(item: Item, writer: VersionWriter) -> str:
    """Journal one finished item, kept or rejected; returns its outcome label."""
    if item.reject is None:
        writer.append("train", item.row)
        return "kept"
    r = item.reject
    item.row.update(RejectStage=r.stage, RejectReason=r.reason, RawOutput=(r.raw or "")[:4000])
    writer.append("rejected", item.row)
    return f"{r.stage}: {r.reason.split(':')[0]}"


def batches(todo: list[Target], size: int) -> Iterator[list[Target]]:
    for i in range(0, len(todo), size):
        yield todo[i:i + size]


class RunFailed(BackendError):
    """The backend gave up after the run started: the version is closed as failed with its rows kept."""


def open_backends(pool: BackendPool, config: SynthConfig, stages: list, models: dict[str, str]) -> dict:
    """One backend per LLM role the stages use (roles naming one model share it); identities checked."""
    specs = config.role_models()
    needs_logprobs = {s.role for s in stages if getattr(s, "logprobs", 0)}
    roles = sorted({s.role for s in stages if s.role})
    backends = {role: pool.open(specs[role], logprobs=role in needs_logprobs) for role in roles}
    for role, backend in backends.items():
        if str(backend.identity) != models[role]:
            raise BackendError(f"{role} model: the engine serves {backend.identity}, not {models[role]}")
    return backends


def new_usage(stages: list, models: dict[str, str]) -> dict[str, Usage]:
    return {s.name: Usage(model=models[s.role]) for s in stages if s.role}


@dataclass
class Shared:
    """What the stages need of the run's data, in a form that travels to other processes (Ray workers)."""

    names: dict[int, str]  # MisconceptionId -> name
    ids: list[int]
    vectors: Any  # misconception-name embeddings, rows of ``ids``
    real_questions: dict[str, str]  # QuestionId -> text of the visible real rows

    @classmethod
    def of(cls, world: World) -> "Shared":
        return cls(world.data.misconceptions, world.ids, world.vectors,
                   {p.QuestionId: p.QuestionText for p in world.data.train_pairs})


def make_context(shared: Shared, embedder, config: SynthConfig, backends: dict, usage: dict[str, Usage],
                 kept=None) -> Context:
    ctx = Context(backends=backends, usage=usage, embedder=embedder, names=shared.names, ids=shared.ids,
                  vectors=shared.vectors,
                  real_questions=NearDuplicateIndex(embedder, config.near_duplicate_threshold),
                  kept=kept, max_attempts=config.max_attempts)
    real = shared.real_questions
    ctx.real_questions.add_texts(list(real), list(real.values()), cache_tag="real-questions")
    return ctx


def local_items(engine: Engine, todo: list[Target], version: str, progress: Progress) -> Iterator[Item]:
    """``--executor local``: every stage, batch after batch, in this process."""
    for batch in batches(todo, engine.config.effective_batch_size()):
        yield from engine.run_batch(batch, version, progress)


def run(config: SynthConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict:
    """Run the factory; returns the version record (or a record with status "nothing to do").

    A backend that gives up before the first item (a bad model, no server) raises BackendError; one that
    gives up during the run (retries exhausted, circuit open, dead engine) raises RunFailed after the
    version is closed as "failed" with every finished row kept; re-running the same command continues.
    """
    world = prepare(config)
    wanted = world.chosen_targets(config, err)
    targets = plan(world, config, wanted)
    stages = stages_for(config)
    store = DatasetStore.open(config.store, all_stage_columns())
    pool = BackendPool(config.backend)
    executor = None
    try:
        identities = {role: pool.identify(spec) for role, spec in config.role_models().items()}
        models = {role: str(identity) for role, identity in identities.items()}
        done, _ = store.stored_keys()
        key = checks_key(stages, models)
        stored_items = {k for k, _ in done}
        todo = [t for t in targets if (item_key(t, models["generator"], config.hide_fold), key) not in done]
        skipped = len(targets) - len(todo)
        rejudged = sum(1 for t in todo if item_key(t, models["generator"], config.hide_fold) in stored_items)
        if config.limit is not None:
            todo = todo[: config.limit]
        if not todo:
            out.write(f"nothing to do: {len(targets)} planned items, {skipped} already in {config.store}\n")
            return {"status": "nothing to do", "planned": len(targets), "skipped": skipped}
        if rejudged:
            err.write(f"note: {rejudged} planned items are in {config.store} with other check settings; they are "
                      "judged again into the new version (generator answers replay from the request cache)\n")
        pool.cache = (RequestCache(config.request_cache_path(), without="--no-request-cache")
                      if config.request_cache else None)
        kept = store.read("train", ["QuestionId", "QuestionText", "BaseQuestionId", "IncorrectAnswerText"])
        shared = Shared.of(world)
        if config.executor == "ray":
            from factory.ray_executor import RayExecutor

            backends = {}  # the workers open them; here only the ordered stages run
            executor = RayExecutor(config, shared, models, pool.cache, err)
        else:
            backends = open_backends(pool, config, stages, models)
        engine = Engine(config, stages, make_context(shared, world.embedder, config, backends,
                                                     new_usage(stages, models), kept), models)
        check_templates(stages, todo[0])
        if executor is None:
            engine.setup()
            finished = lambda version, progress: local_items(engine, todo, version, progress)  # noqa: E731
        else:
            engine.setup(engine.ordered_stages)
            executor.start(todo)
            finished = lambda version, progress: executor.items(engine, todo, version, progress)  # noqa: E731
        used = {role: {"name": i.name, "weights_sha256": i.weights, "backend": i.backend}
                for role, i in identities.items() if any(s.role == role for s in stages)}
        return _run(config, world, engine, store, todo, len(targets), skipped, used, finished, executor, out, err)
    finally:
        if executor is not None:
            executor.close()
        pool.close()
        store.close()


def check_templates(stages: list, sample: Target) -> None:
    """Render every prompt once before the run: a template error stops it before any LLM call."""
    row = {"QuestionText": "What is 1 + 1?", "CorrectAnswerText": "2", "IncorrectAnswerText": "11",
           "OtherAnswerTexts": ["1", "3"], "MisconceptionName": sample.misconception_name, "SubjectName": "s",
           "ConstructName": "c", "MisconceptionId": sample.misconception_id}
    item = Item(sample, row)
    for stage in stages:
        if not getattr(stage, "template", None):
            continue
        if stage.role == "generator":
            stage.prompt(sample)
        elif stage.name == "pick":
            stage.prompt((item, [sample.misconception_id], [sample.misconception_name]))
        else:
            stage.prompt(item)


def _run(config: SynthConfig, world: World, engine: Engine, store: DatasetStore, todo: list[Target], planned: int,
         skipped: int, used_models: dict, finished: Callable[[str, Progress], Iterator[Item]], executor, out: TextIO, err: TextIO) -> dict:
    writer = store.new_version({
        "config": config.as_record(),
        "models": used_models,
        "prompt_versions": {s.name: s.version for s in engine.stages if getattr(s, "version", None)},
        "checks_key": engine.checks_key,
        "clusters": {"embedder": world.embedder.name, "params": config.cluster.as_dict(),
                     **world.clustering.stats(), "ids": sorted({t.cluster_id for t in todo})},
        "seed": config.seed, "planned": planned, "skipped_done": skipped, "attempted": len(todo),
    }, flush_every=config.flush_every)
    usage = engine.ctx.usage
    progress = Progress(len(todo), usage, enabled=config.progress, stream=err)
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    status = "failed"
    try:
        for item in finished(writer.version, progress):
            outcome = commit(item, writer)
            outcomes[outcome] += 1
            progress.update(outcome)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BackendError as e:
        raise RunFailed(f"{e}; the rows made so far are kept: re-run the same command to continue") from None
    finally:
        progress.close()
        elapsed = time.perf_counter() - started
        record = writer.finish(status, usage={n: u.as_dict() for n, u in usage.items()},
                               executor=executor.record() if executor is not None else {"name": "local"},
                               usage_by_model=usage_by_model(usage), stages=engine.stage_record(),
                               seconds=round(elapsed, 1),
                               items_per_minute=round(sum(outcomes.values()) / elapsed * 60, 2))
        out.write(summary_table(record, usage, store.read("train", ["QuestionId"]).num_rows))
    return record


def usage_by_model(usage: dict[str, Usage]) -> dict[str, dict]:
    """The stages' accounting summed per model."""
    totals: dict[str, Usage] = {}
    for u in usage.values():
        totals.setdefault(u.model, Usage(model=u.model)).merge(u)
    return {m: u.as_dict() for m, u in totals.items()}


__all__ = ["ConfigError", "Engine", "RunFailed", "checks_key", "checks_key_of_config", "run"]
