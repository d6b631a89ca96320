"""The engine of a run: its stages, their context and accounting, and how a task of items goes through them.

A *task* is consecutive items of the plan (cluster order). ``Engine.run_task`` sends each stage's requests
for the task's items together, so requests that share a cluster's many-shot prefix reach the LLM engine
next to each other (prefix-aware scheduling) and a batching engine sees them together, and returns the
finished items with the task's own counts and token accounting (``TaskResult``). An *executor*
(``factory.executors``) runs tasks, here or on Ray workers, and hands their results back in plan order;
the runner (``factory.runner``) merges each into the run's totals, runs the ordered stages
(near-duplicate, repeat: they compare an item with every earlier one) and commits. The engine knows no
executor.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from factory.config import SynthConfig
from factory.context import Context, Item
from factory.stages import stages_for
from factory.plan import item_key
from factory.report import Progress
from factory.world import World
from generators import Target
from judges import NearDuplicateIndex
from llm import BackendError, BackendPool, Usage
from llm.stage import Stage
from store import now_iso


@dataclass
class StageCount:
    seen: int = 0  # live items the stage worked on
    rejected: int = 0

    def as_dict(self) -> dict:
        return {"in": self.seen, "passed": self.seen - self.rejected, "rejected": self.rejected}


def checks_key(stages: list, models: dict[str, str]) -> str:
    """What decides the verdicts on a generated item: every stage after generation, its prompt version,
    its role's model and its settings. A re-run with another key judges its items again."""
    spec = [{"stage": s.name, "version": s.version, "model": models.get(s.role or "", ""),
             "settings": s.settings()} for s in stages[1:]]
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checks_key_of_config(config: SynthConfig, models: dict[str, str]) -> str:
    return checks_key(stages_for(config), models)


@dataclass
class TaskResult:
    """What running the item stages over a task's targets gives back, for the executor to hand to the committer."""

    index: int  # the task's place in the plan
    items: list[Item]
    counts: dict[str, StageCount]  # the stages that saw items
    usage: dict[str, Usage]  # by stage
    answers: list[tuple[str, str, str, str]] = field(default_factory=list)  # new request-cache entries (Ray)
    pid: int = 0  # the process that ran it (Ray: a new pid means a restarted worker)
    seconds: float = 0.0


@dataclass
class Engine:
    """One run's stages and their context. ``run_task`` makes a task's items through the item stages and returns
    them with the task's own counts and accounting; ``merge`` adds those to the run's totals; ``commit_stages``
    runs the ordered stages (near-duplicate, repeat) over finished items, in plan order."""

    config: SynthConfig
    stages: list[Stage]
    ctx: Context
    models: dict[str, str]  # role -> model identity
    counts: dict[str, StageCount] = field(default_factory=dict)  # the run's totals
    usage: dict[str, Usage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {s.name: StageCount() for s in self.stages}
        self.usage = new_usage(self.stages, self.models)
        self.checks_key = checks_key(self.stages, self.models)
        llm_stages = [s for s in self.stages if s.role]
        self.prompt_version = " ".join(f"{s.name}:{s.version}" for s in llm_stages)
        split = len(self.stages)
        while split and self.stages[split - 1].ordered:
            split -= 1
        self.item_stages, self.ordered_stages = self.stages[:split], self.stages[split:]

    def setup(self, stages: list[Stage]) -> None:
        for stage in stages:
            stage.setup(self.ctx)

    def row(self, target: Target, version: str) -> dict:
        suffix = f"d{target.item_index}" if target.base is not None else str(target.item_index)
        return {
            "QuestionId": f"syn-{version}-{target.misconception_id}-{suffix}",
            "MisconceptionId": target.misconception_id, "MisconceptionName": target.misconception_name,
            "ClusterId": target.cluster_id, "Seed": target.seed, "ItemIndex": target.item_index,
            "ItemKey": item_key(target, self.models["generator"], self.config.hide_fold,
                                self.config.key_tag()),
            "ChecksKey": self.checks_key, "Mode": self.config.mode, "Checks": [],
            "ShotIds": [s.key for s in target.shots], "RealRowsHidden": str(self.config.hide_fold or ""),
            "GeneratorModel": self.models["generator"], "SolverModel": self.models["solver"],
            "JudgeModel": self.models["judge"], "TeacherModel": self.models["teacher"],
            "PromptVersion": self.prompt_version, "Version": version, "OtherAnswerTexts": [],
            "RejectStage": "", "RejectReason": "", "RawOutput": "", "Rationale": "", "JudgeReason": "",
            "CreatedAt": now_iso(),
        }

    def run_stages(self, items: list[Item], stages: list[Stage], counts: dict[str, StageCount],
                   progress: Progress | None = None) -> None:
        """Run stages over the items still alive, counting what each stage saw and rejected."""
        for stage in stages:
            alive = [it for it in items if it.reject is None]
            if alive:
                stage.run(alive, self.ctx)
                count = counts[stage.name]
                count.seen += len(alive)
                count.rejected += sum(1 for it in alive if it.reject is not None)
            if progress:
                progress.refresh()
        self.ctx.end_batch()

    def run_task(self, index: int, targets: list[Target], version: str) -> TaskResult:
        """The item stages over one task's targets, accounted apart from the run's totals."""
        started = time.perf_counter()
        counts = {s.name: StageCount() for s in self.item_stages}
        self.ctx.usage = new_usage(self.stages, self.models)
        items = [Item(t, self.row(t, version)) for t in targets]
        self.run_stages(items, self.item_stages, counts)
        return TaskResult(index, items, {n: c for n, c in counts.items() if c.seen}, self.ctx.usage,
                          pid=os.getpid(), seconds=time.perf_counter() - started)

    def merge(self, result: TaskResult) -> None:
        for name, count in result.counts.items():
            self.counts[name].seen += count.seen
            self.counts[name].rejected += count.rejected
        for name, usage in result.usage.items():
            self.usage[name].merge(usage)

    def commit_stages(self, items: list[Item], progress: Progress | None = None) -> None:
        self.run_stages(items, self.ordered_stages, self.counts, progress)

    def stage_record(self) -> list[dict]:
        return [{"name": s.name, "role": s.role, "model": self.models.get(s.role or ""),
                 "version": s.version or None, "settings": s.settings(),
                 **self.counts[s.name].as_dict()} for s in self.stages]


def open_backends(pool: BackendPool, config: SynthConfig, stages: list, models: dict[str, str]) -> dict:
    """One backend per LLM role the stages use (roles naming one model share it); identities checked."""
    specs = config.role_models()
    needs_logprobs = {s.role for s in stages if s.logprobs}
    roles = sorted({s.role for s in stages if s.role})
    backends = {role: pool.open(specs[role], logprobs=role in needs_logprobs) for role in roles}
    for role, backend in backends.items():
        if str(backend.identity) != models[role]:
            raise BackendError(f"{role} model: the engine serves {backend.identity}, not {models[role]}")
    return backends


def new_usage(stages: list, models: dict[str, str]) -> dict[str, Usage]:
    return {s.name: Usage(model=models[s.role]) for s in stages if s.role}


@dataclass
class RunData:
    """What the stages need of the run's data, in a form that travels to other processes (Ray workers)."""

    names: dict[int, str]  # MisconceptionId -> name
    ids: list[int]
    vectors: Any  # misconception-name embeddings, rows of ``ids``
    real_questions: dict[str, str]  # QuestionId -> text of the visible real rows

    @classmethod
    def of(cls, world: World) -> "RunData":
        return cls(world.data.misconceptions, world.ids, world.vectors,
                   {p.QuestionId: p.QuestionText for p in world.data.train_pairs})


def make_context(data: RunData, embedder, config: SynthConfig, backends: dict, usage: dict[str, Usage],
                 kept=None) -> Context:
    ctx = Context(backends=backends, usage=usage, embedder=embedder, names=data.names, ids=data.ids,
                  vectors=data.vectors,
                  real_questions=NearDuplicateIndex(embedder, config.near_duplicate_threshold),
                  kept=kept, max_attempts=config.max_attempts)
    real = data.real_questions
    ctx.real_questions.add_texts(list(real), list(real.values()), cache_tag="real-questions")
    return ctx


def check_templates(stages: list, sample: Target) -> None:
    """Render every prompt once before the run: a template error stops it before any LLM call."""
    row = {"QuestionText": "What is 1 + 1?", "CorrectAnswerText": "2", "IncorrectAnswerText": "11",
           "OtherAnswerTexts": ["1", "3"], "MisconceptionName": sample.misconception_name, "SubjectName": "s",
           "ConstructName": "c", "MisconceptionId": sample.misconception_id}
    item = Item(sample, row)
    for stage in stages:
        stage.sample_prompt(item)


def usage_by_model(usage: dict[str, Usage]) -> dict[str, dict]:
    """The stages' accounting summed per model."""
    totals: dict[str, Usage] = {}
    for u in usage.values():
        totals.setdefault(u.model, Usage(model=u.model)).merge(u)
    return {m: u.as_dict() for m, u in totals.items()}


__all__ = ["Engine", "RunData", "StageCount", "TaskResult", "checks_key", "checks_key_of_config", "make_context",
           "new_usage", "open_backends"]
