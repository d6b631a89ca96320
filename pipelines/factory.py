"""The factory engine: data -> clusters -> targets -> generate -> check -> judge -> teach -> store.

Items go through the stages in batches, in plan (cluster) order: all
generator requests of a batch, then all judge requests, then all teacher
requests.  Requests that share a cluster's many-shot prefix therefore reach
the engine next to each other (prefix-aware scheduling), and a batching
engine sees them together.  Every LLM answer is persisted in the request
cache as it arrives, and finished items are journalled in plan order at the
end of each batch (see ``store``): a kill loses only computation in flight,
and a re-run replays the cached answers and ends with the same rows.
"""
from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, TextIO

import numpy as np

from eedi import EediData, load_eedi
from embeddings import Clustering, Embedder, cluster_misconceptions
from generators import GeneratedQuestion, QuestionGenerator, RationaleWriter, ShotPicker, Target
from judges import LLMJudge, NearDuplicateIndex, check_options
from llm import Backend, BackendPool, RequestCache, Usage, cache_dir
from llm.step import run_steps
from pipelines.config import SynthConfig
from pipelines.report import Progress, summary_table
from store import DatasetStore, VersionWriter, now_iso
from trainers.splits import FoldSpec

ROLES = ("generator", "judge", "teacher")


class ConfigError(Exception):
    """A command-line choice that cannot be honoured (e.g. an unknown cluster id). One line."""


@dataclass
class World:
    """What every run derives from the data: embeddings, clusters, real-row counts."""

    data: EediData
    embedder: Embedder
    ids: list[int]  # MisconceptionIds, ascending; rows of ``vectors``
    vectors: np.ndarray
    clustering: Clustering
    real_rows: dict[int, int]  # visible rows per misconception
    hidden: set[int] | None = None  # --hide-fold: the misconceptions of the hidden rows

    def targets(self, min_real_rows: int) -> set[int]:
        wanted = {mid for mid, n in self.real_rows.items() if n < min_real_rows}
        return wanted if self.hidden is None else wanted & self.hidden


def prepare(config: SynthConfig) -> World:
    """Load the data, embed and cluster the misconceptions.

    With ``config.hide_fold`` the fold's real rows are removed before anything uses them:
    shots and near-duplicate references come from the other rows only, and the targets
    are the fold's misconceptions left without rows (an evaluation stand-in for real
    misconceptions that have none).
    """
    data = load_eedi(config.data_dir)
    hidden = None
    if config.hide_fold is not None:
        visible, held = config.hide_fold.split(data.train_pairs)
        data = EediData(misconceptions=data.misconceptions, train_pairs=visible)
        hidden = {p.MisconceptionId for p in held}
    embedder = Embedder(cache=cache_dir())
    ids = sorted(data.misconceptions)
    vectors = embedder.encode_cached([data.misconceptions[m] for m in ids], "misconceptions")
    clustering = cluster_misconceptions(ids, vectors, config.cluster)
    return World(data, embedder, ids, vectors, clustering, data.real_row_counts(), hidden)


def item_seed(seed: int, misconception_id: int, item_index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{misconception_id}:{item_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def item_key(target: Target, generator: str, hide_fold: FoldSpec | None = None) -> str:
    """Identifies a work item across runs: re-runs skip keys already in the store."""
    key = f"{target.misconception_id}:{target.item_index}:{target.seed}:{generator}"
    return f"{key}:hide={hide_fold}" if hide_fold else key


def plan(world: World, config: SynthConfig) -> list[Target]:
    """Every target item of the chosen clusters, in cluster order (shared prefixes stay adjacent)."""
    wanted = world.targets(config.min_real_rows)
    members = world.clustering.members
    if config.clusters is None:
        chosen = [cid for cid, m in members.items() if wanted.intersection(m)]
    else:
        unknown = [c for c in config.clusters if c not in members]
        if unknown:
            raise ConfigError(f"--cluster {unknown[0]}: no such cluster (ids 0-{len(members) - 1}; see --list-clusters)")
        chosen = sorted(set(config.clusters))
    picker = ShotPicker(world.data.misconceptions, world.data.train_pairs, world.ids, world.vectors)
    names = world.data.misconceptions
    targets = []
    for cid in chosen:
        shots = picker.pick(members[cid], config.shots)
        for mid in members[cid]:
            if mid not in wanted:
                continue
            for k in range(config.per_misconception):
                targets.append(Target(mid, names[mid], cid, k, item_seed(config.seed, mid, k), shots))
    return targets


def list_clusters(world: World, min_real_rows: int, out: TextIO = sys.stdout, names: int = 3) -> None:
    wanted = world.targets(min_real_rows)
    stats = world.clustering.stats()
    out.write(f"# {stats['clusters']} clusters of {len(world.ids)} misconceptions: {stats['hdbscan_clusters']} "
              f"from HDBSCAN, {stats['noise']} noise points of which {stats['noise_attached']} joined a "
              f"cluster and {stats['singletons']} are singletons; {len(wanted)} targets\n")
    out.write("cluster\tsize\treal_rows\ttargets\tnames\n")
    for cid, m in world.clustering.members.items():
        rows = sum(world.real_rows[x] for x in m)
        shown = " | ".join(world.data.misconceptions[x][:60] for x in m[:names])
        out.write(f"{cid}\t{len(m)}\t{rows}\t{len(wanted.intersection(m))}\t{shown}\n")


@dataclass
class Item:
    """One work item on its way through the stages."""

    target: Target
    row: dict
    question: GeneratedQuestion | None = None
    attempts: int = 0
    reject: tuple[str, str, str] | None = None  # (stage, reason, raw LLM output)


class Factory:
    """One run: the backends, the steps, the near-duplicate indexes and the accounting."""

    def __init__(self, config: SynthConfig, world: World, backends: dict[str, Backend]):
        self.config, self.world, self.backends = config, world, backends
        self.generator, self.judge, self.teacher = QuestionGenerator(), LLMJudge(), RationaleWriter()
        self.steps = {"generator": self.generator, "judge": self.judge, "teacher": self.teacher}
        self.models = {role: str(b.identity) for role, b in backends.items()}
        self.usage = {role: Usage(model=self.models[role]) for role in ROLES}
        self.prompt_version = " ".join(f"{s.name}:{s.version}" for s in self.steps.values())
        # Real questions: a generated copy is retried.  Kept synthetic ones: checked at commit, in plan
        # order, so the outcome does not depend on which answers were computed in which run.
        self.real_questions = NearDuplicateIndex(world.embedder, config.near_duplicate_threshold)
        self.kept_questions = NearDuplicateIndex(world.embedder, config.near_duplicate_threshold)
        self.outcomes: Counter[str] = Counter()
        self._vectors: dict[str, np.ndarray] = {}

    def check_templates(self, sample: Target) -> None:
        """Render every prompt once before the run: a template error stops it before any LLM call."""
        item = GeneratedQuestion(subject="s", construct="c", question="What is 1 + 1?", correct_answer="2",
                                 misconception_answer="11", other_wrong_answers=["1", "3"])
        self.generator.prompt(sample)
        self.judge.prompt((sample, item))
        self.teacher.prompt((sample, item))

    def load_references(self, store: DatasetStore) -> None:
        real = {p.QuestionId: p.QuestionText for p in self.world.data.train_pairs}
        self.real_questions.add_texts(list(real), list(real.values()), cache_tag="real-questions")
        kept = store.read("train", ["QuestionId", "QuestionText"])
        if kept.num_rows:
            self.kept_questions.add_texts(kept.column("QuestionId").to_pylist(),
                                          kept.column("QuestionText").to_pylist())

    def row(self, target: Target, writer: VersionWriter) -> dict:
        return {
            "QuestionId": f"syn-{writer.version}-{target.misconception_id}-{target.item_index}",
            "MisconceptionId": target.misconception_id, "MisconceptionName": target.misconception_name,
            "ClusterId": target.cluster_id, "Seed": target.seed, "ItemIndex": target.item_index,
            "ItemKey": item_key(target, self.models["generator"], self.config.hide_fold),
            "ShotIds": [s.key for s in target.shots],
            "RealRowsHidden": str(self.config.hide_fold or ""),
            "GeneratorModel": self.models["generator"], "JudgeModel": self.models["judge"],
            "TeacherModel": self.models["teacher"], "PromptVersion": self.prompt_version,
            "Version": writer.version, "OtherAnswerTexts": [], "RejectStage": "", "RejectReason": "",
            "RawOutput": "", "Rationale": "", "JudgeReason": "", "CreatedAt": now_iso(),
        }

    def embed(self, text: str) -> np.ndarray:
        if text not in self._vectors:
            self._vectors[text] = self.world.embedder.encode([text])[0]
        return self._vectors[text]

    def make_batch(self, targets: list[Target], writer: VersionWriter, progress: Progress | None = None) -> list[str]:
        """Make a batch of items and write each, kept or rejected, in plan order. Returns the outcome labels."""
        items = [Item(t, self.row(t, writer)) for t in targets]
        for stage in (self.generate, self.score, self.explain):
            alive = [it for it in items if it.reject is None]
            if alive:
                stage(alive)
            if progress:
                progress.refresh()
        outcomes = [self.commit(it, writer) for it in items]
        self._vectors.clear()
        return outcomes

    def generate(self, items: list[Item]) -> None:
        def rules(q: GeneratedQuestion) -> str | None:
            return check_options(q) or self.real_questions.check(self.embed(q.question))

        outcomes = run_steps(self.generator, self.backends["generator"], [it.target for it in items],
                             self.usage["generator"], self.config.max_attempts, check=rules)
        for it, gen in zip(items, outcomes):
            it.attempts, it.question = gen.attempts, gen.value
            if gen.value is not None:
                q = gen.value
                it.row.update(SubjectName=q.subject, ConstructName=q.construct_name, QuestionText=q.question,
                              CorrectAnswerText=q.correct_answer, IncorrectAnswerText=q.misconception_answer,
                              OtherAnswerTexts=q.other_wrong_answers)
            if not gen.ok:
                it.reject = ("rules" if gen.failed_check else "generate", gen.error, gen.raw)

    def score(self, items: list[Item]) -> None:
        outcomes = run_steps(self.judge, self.backends["judge"], [(it.target, it.question) for it in items],
                             self.usage["judge"], self.config.max_attempts)
        for it, verdict in zip(items, outcomes):
            if not verdict.ok:
                it.reject = ("judge", f"invalid judge output: {verdict.error}", verdict.raw)
                continue
            it.row.update(JudgeScore=float(verdict.value.score), JudgeReason=verdict.value.reason)
            if verdict.value.score < self.config.min_score:
                it.reject = ("judge", f"score below {self.config.min_score:g}: {verdict.value.score}", "")

    def explain(self, items: list[Item]) -> None:
        outcomes = run_steps(self.teacher, self.backends["teacher"], [(it.target, it.question) for it in items],
                             self.usage["teacher"], self.config.max_attempts)
        for it, rationale in zip(items, outcomes):
            if rationale.ok:
                it.row.update(Rationale=rationale.value)
            else:
                it.reject = ("teach", rationale.error, rationale.raw)

    def commit(self, it: Item, writer: VersionWriter) -> str:
        """Journal one finished item (the last check, against kept synthetic questions, happens here)."""
        if it.reject is None:
            vector = self.embed(it.question.question)
            duplicate = self.kept_questions.check(vector)
            if duplicate is None:
                it.row.update(Attempts=it.attempts)
                writer.append("train", it.row)
                self.kept_questions.add([it.row["QuestionId"]], vector[None, :])
                return "kept"
            it.reject = ("rules", duplicate, "")
        stage, reason, raw = it.reject
        it.row.update(RejectStage=stage, RejectReason=reason, RawOutput=raw[:4000], Attempts=it.attempts)
        writer.append("rejected", it.row)
        return f"{stage}: {reason.split(':')[0]}"

    def usage_record(self) -> dict:
        return {role: u.as_dict() for role, u in self.usage.items()}


def batches(todo: list[Target], size: int) -> Iterator[list[Target]]:
    for i in range(0, len(todo), size):
        yield todo[i:i + size]


def open_cache(config: SynthConfig) -> RequestCache | None:
    return RequestCache(config.request_cache_path()) if config.request_cache else None


def run(config: SynthConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict:
    """Run the factory; returns the version record (or a record with status "nothing to do").

    A backend that gives up (retries exhausted, circuit open, dead engine)
    raises BackendError after the version is closed as "failed" with every
    finished row kept; re-running the same command continues.
    """
    world = prepare(config)
    targets = plan(world, config)
    store = DatasetStore.open(config.store)
    pool = BackendPool(config.backend)
    try:
        generator_name = str(pool.identify(config.generator_model))
        done, _ = store.stored_keys()
        todo = [t for t in targets if item_key(t, generator_name, config.hide_fold) not in done]
        skipped = len(targets) - len(todo)
        if config.limit is not None:
            todo = todo[: config.limit]
        if not todo:
            out.write(f"nothing to do: {len(targets)} planned items, {skipped} already in {config.store}\n")
            return {"status": "nothing to do", "planned": len(targets), "skipped": skipped}
        pool.cache = open_cache(config)
        specs = {"generator": config.generator_model, "judge": config.judge_model, "teacher": config.teacher_model}
        backends = {role: pool.open(spec) for role, spec in specs.items()}
        factory = Factory(config, world, backends)
        # Rows are keyed with the opened backend's identity; skipping used the same one.
        assert factory.models["generator"] == generator_name, (factory.models["generator"], generator_name)
        factory.check_templates(todo[0])
        factory.load_references(store)
        writer = store.new_version({
            "config": config.as_record(),
            "models": {r: {"name": b.identity.name, "weights_sha256": b.identity.weights,
                           "backend": b.identity.backend} for r, b in backends.items()},
            "prompt_versions": {s.name: s.version for s in factory.steps.values()},
            "clusters": {"embedder": world.embedder.name, "params": config.cluster.as_dict(),
                         **world.clustering.stats(), "ids": sorted({t.cluster_id for t in todo})},
            "seed": config.seed,
            "planned": len(targets), "skipped_done": skipped, "attempted": len(todo),
        })
        progress = Progress(len(todo), factory.usage, enabled=config.progress, stream=err)
        started = time.perf_counter()
        status = "failed"
        try:
            for batch in batches(todo, config.effective_batch_size()):
                for outcome in factory.make_batch(batch, writer, progress):
                    factory.outcomes[outcome] += 1
                    progress.update(outcome)
            status = "complete"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            progress.close()
            elapsed = time.perf_counter() - started
            record = writer.finish(status, usage=factory.usage_record(), usage_by_model=usage_by_model(factory.usage),
                                   seconds=round(elapsed, 1),
                                   items_per_minute=round(sum(factory.outcomes.values()) / elapsed * 60, 2))
            out.write(summary_table(record, factory.usage, store.read("train", ["QuestionId"]).num_rows))
        return record
    finally:
        pool.close()
        store.close()


def usage_by_model(usage: dict[str, Usage]) -> dict[str, dict]:
    """The stages' accounting summed per model."""
    totals: dict[str, Usage] = {}
    for u in usage.values():
        t = totals.setdefault(u.model, Usage(model=u.model))
        for name in ("requests", "replayed", "prompt_tokens", "cached_prompt_tokens", "completion_tokens",
                     "structured", "parsed", "retries", "seconds", "computed_tokens", "wall_seconds"):
            setattr(t, name, getattr(t, name) + getattr(u, name))
        for kind, n in u.failures.items():
            t.failures[kind] = t.failures.get(kind, 0) + n
    return {m: u.as_dict() for m, u in totals.items()}
