"""The factory engine: data -> clusters -> targets -> generate -> check -> judge -> teach -> store.

Items flow one at a time through the steps, in cluster order, so that each
cluster's many-shot prefix stays in the generator's KV cache and a kill loses
at most the item in flight.  Every finished item, kept or rejected, is
journalled before the next starts (see ``store``).
"""
from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from eedi import EediData, load_eedi
from embeddings import Clustering, Embedder, cluster_misconceptions
from generators import GeneratedQuestion, QuestionGenerator, RationaleWriter, ShotPicker, Target
from judges import LLMJudge, NearDuplicateIndex, check_options
from llm import Backend, Usage, cache_dir, identify, open_backend
from llm.step import run_step
from pipelines.config import SynthConfig
from pipelines.report import Progress, summary_table
from store import DatasetStore, VersionWriter, now_iso

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
    real_rows: dict[int, int]

    def targets(self, min_real_rows: int) -> set[int]:
        return {mid for mid, n in self.real_rows.items() if n < min_real_rows}


def prepare(config: SynthConfig) -> World:
    data = load_eedi(config.data_dir)
    embedder = Embedder(cache=cache_dir())
    ids = sorted(data.misconceptions)
    vectors = embedder.encode_cached([data.misconceptions[m] for m in ids], "misconceptions")
    clustering = cluster_misconceptions(ids, vectors, config.cluster)
    return World(data, embedder, ids, vectors, clustering, data.real_row_counts())


def item_seed(seed: int, misconception_id: int, item_index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{misconception_id}:{item_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def item_key(target: Target, generator: str) -> str:
    """Identifies a work item across runs: re-runs skip keys already in the store."""
    return f"{target.misconception_id}:{target.item_index}:{target.seed}:{generator}"


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


class Factory:
    """One run: owns the backends, the steps, the near-duplicate index and the version writer."""

    def __init__(self, config: SynthConfig, world: World, backends: dict[str, Backend]):
        self.config, self.world, self.backends = config, world, backends
        self.generator, self.judge, self.teacher = QuestionGenerator(), LLMJudge(), RationaleWriter()
        self.steps = {"generator": self.generator, "judge": self.judge, "teacher": self.teacher}
        self.usage = {role: Usage() for role in ROLES}
        self.prompt_version = " ".join(f"{s.name}:{s.version}" for s in self.steps.values())
        self.models = {role: str(b.identity) for role, b in backends.items()}
        self.dedup = NearDuplicateIndex(world.embedder, config.near_duplicate_threshold)
        self.outcomes: Counter[str] = Counter()

    def check_templates(self, sample: Target) -> None:
        """Render every prompt once before the run: a template error stops it before any LLM call."""
        item = GeneratedQuestion(subject="s", construct="c", question="What is 1 + 1?", correct_answer="2",
                                 misconception_answer="11", other_wrong_answers=["1", "3"])
        self.generator.prompt(sample)
        self.judge.prompt((sample, item))
        self.teacher.prompt((sample, item))

    def load_references(self, store: DatasetStore) -> None:
        real = {p.QuestionId: p.QuestionText for p in self.world.data.train_pairs}
        self.dedup.add_texts(list(real), list(real.values()), cache_tag="real-questions")
        kept = store.read("train", ["QuestionId", "QuestionText"])
        if kept.num_rows:
            self.dedup.add_texts(kept.column("QuestionId").to_pylist(), kept.column("QuestionText").to_pylist())

    def row(self, target: Target, writer: VersionWriter) -> dict:
        return {
            "QuestionId": f"syn-{writer.version}-{target.misconception_id}-{target.item_index}",
            "MisconceptionId": target.misconception_id, "MisconceptionName": target.misconception_name,
            "ClusterId": target.cluster_id, "Seed": target.seed, "ItemIndex": target.item_index,
            "ItemKey": item_key(target, self.models["generator"]), "ShotIds": [s.key for s in target.shots],
            "GeneratorModel": self.models["generator"], "JudgeModel": self.models["judge"],
            "TeacherModel": self.models["teacher"], "PromptVersion": self.prompt_version,
            "Version": writer.version, "OtherAnswerTexts": [], "RejectStage": "", "RejectReason": "",
            "RawOutput": "", "Rationale": "", "JudgeReason": "", "CreatedAt": now_iso(),
        }

    def make(self, target: Target, writer: VersionWriter) -> str:
        """Make one item and write it, kept or rejected. Returns the outcome label."""
        row = self.row(target, writer)
        attempts = 0

        def reject(stage: str, reason: str, raw: str = "") -> str:
            row.update(RejectStage=stage, RejectReason=reason, RawOutput=raw[:4000], Attempts=attempts)
            writer.append("rejected", row)
            return f"{stage}: {reason.split(':')[0]}"

        def rules(item: GeneratedQuestion) -> str | None:
            return check_options(item) or self.dedup.check(self.dedup.embed(item.question))

        gen = run_step(self.generator, self.backends["generator"], target, self.usage["generator"],
                       self.config.max_attempts, check=rules)
        attempts = gen.attempts
        item: GeneratedQuestion | None = gen.value
        if item is not None:
            row.update(SubjectName=item.subject, ConstructName=item.construct_name, QuestionText=item.question,
                       CorrectAnswerText=item.correct_answer, IncorrectAnswerText=item.misconception_answer,
                       OtherAnswerTexts=item.other_wrong_answers)
        if not gen.ok:
            return reject("rules" if gen.failed_check else "generate", gen.error, gen.raw)

        verdict = run_step(self.judge, self.backends["judge"], (target, item), self.usage["judge"],
                           self.config.max_attempts)
        if not verdict.ok:
            return reject("judge", f"invalid judge output: {verdict.error}", verdict.raw)
        row.update(JudgeScore=float(verdict.value.score), JudgeReason=verdict.value.reason)
        if verdict.value.score < self.config.min_score:
            return reject("judge", f"score below {self.config.min_score:g}: {verdict.value.score}")

        rationale = run_step(self.teacher, self.backends["teacher"], (target, item), self.usage["teacher"],
                             self.config.max_attempts)
        if not rationale.ok:
            return reject("teach", rationale.error, rationale.raw)
        row.update(Rationale=rationale.value, Attempts=attempts)
        writer.append("train", row)
        self.dedup.add([row["QuestionId"]], self.dedup.embed(item.question)[None, :])
        return "kept"

    def usage_record(self) -> dict:
        return {role: u.as_dict() for role, u in self.usage.items()}


def open_backends(config: SynthConfig) -> dict[str, Backend]:
    specs = {"generator": config.generator_model, "judge": config.judge_model, "teacher": config.teacher_model}
    backends: dict[str, Backend] = {}
    try:
        for role, spec in specs.items():
            backends[role] = open_backend(spec, n_ctx=config.n_ctx)
    except BaseException:
        for b in backends.values():
            b.close()
        raise
    return backends


def run(config: SynthConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict:
    """Run the factory; returns the version record (or a record with status "nothing to do")."""
    world = prepare(config)
    targets = plan(world, config)
    store = DatasetStore.open(config.store)
    backends: dict[str, Backend] = {}
    try:
        generator_name = str(identify(config.generator_model))
        done, _ = store.stored_keys()
        todo = [t for t in targets if item_key(t, generator_name) not in done]
        skipped = len(targets) - len(todo)
        if config.limit is not None:
            todo = todo[: config.limit]
        if not todo:
            out.write(f"nothing to do: {len(targets)} planned items, {skipped} already in {config.store}\n")
            return {"status": "nothing to do", "planned": len(targets), "skipped": skipped}
        backends = open_backends(config)
        factory = Factory(config, world, backends)
        # Rows are keyed with the loaded backend's identity; skipping used the resolved one.
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
            for target in todo:
                outcome = factory.make(target, writer)
                factory.outcomes[outcome] += 1
                progress.update(outcome)
            status = "complete"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            progress.close()
            elapsed = time.perf_counter() - started
            record = writer.finish(status, usage=factory.usage_record(), seconds=round(elapsed, 1),
                                   items_per_minute=round(sum(factory.outcomes.values()) / elapsed * 60, 2))
            out.write(summary_table(record, factory.usage, store.read("train", ["QuestionId"]).num_rows))
        return record
    finally:
        for b in backends.values():
            b.close()
        store.close()
