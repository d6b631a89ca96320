"""``factory.run(config)``: a whole run, from the data to a closed store version.

Prepare the world (data, embeddings, clusters), plan the items, skip those already stored with the same
checks, open the backends and an executor (``factory.executors``), then take each task's result in plan
order: merge its counts and accounting, run the ordered stages, journal every item (kept or rejected).
Every LLM answer is persisted in the request cache as it arrives, and the journal is fsynced at the end
of each task (see ``store``): a kill loses only computation in flight, and a re-run replays the cached
answers and ends with the same rows.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from factory.config import SynthConfig
from factory.context import Item
from factory.engine import (Engine, RunData, check_templates, checks_key, make_context, open_backends,
                            usage_by_model)
from factory.executors import Executor, LocalExecutor
from factory.stages import all_stage_columns, stages_for
from factory.plan import item_key, plan
from factory.report import Progress, summary_table
from factory.world import World, prepare
from generators import Target
from llm import BackendError, BackendPool, RequestCache
from store import DatasetStore, VersionWriter

NO_MODEL = "none"  # the model columns of an LLM-free mode's rows


class RunFailed(BackendError):
    """The backend gave up after the run started: the version is closed as failed with its rows kept."""


def commit(item: Item, writer: VersionWriter) -> str:
    """Journal one finished item, kept or rejected; returns its outcome label."""
    if item.reject is None:
        writer.append("train", item.row)
        return "kept"
    r = item.reject
    item.row.update(RejectStage=r.stage, RejectReason=r.reason, RawOutput=(r.raw or "")[:4000])
    writer.append("rejected", item.row)
    return f"{r.stage}: {r.reason.split(':')[0]}"


def without_kept_rows(wanted: set[int], store: DatasetStore, config: SynthConfig, err: TextIO) -> set[int]:
    """``--fill-gaps``: the targets the store holds no kept row for, among rows made with the same hidden fold.

    Rows of earlier ``--fill-gaps`` runs of the same mode do not count, so a killed fill run, re-run, fills
    the same gaps (its finished items are skipped by key, as in any re-run).
    """
    own = {v["id"] for v in store.versions()
           if v.get("config", {}).get("fill_gaps") and v["config"].get("mode") == config.mode}
    fold = str(config.hide_fold or "")
    rows = store.read("train", ["MisconceptionId", "RealRowsHidden", "Version"]).to_pylist()
    served = {r["MisconceptionId"] for r in rows if r["RealRowsHidden"] == fold and r["Version"] not in own}
    left = wanted - served
    err.write(f"--fill-gaps: {len(wanted) - len(left)} of {len(wanted)} targets have kept rows in {config.store}; "
              f"items for the other {len(left)}\n")
    return left


def make_executor(config: SynthConfig, data: RunData, models: dict[str, str], pool: BackendPool,
                  err: TextIO) -> Executor:
    if config.executor == "ray":
        from factory.ray_executor import RayExecutor

        return RayExecutor(config, data, models, pool.cache, err)
    return LocalExecutor(config.effective_batch_size())


def run(config: SynthConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict:
    """Run the factory; returns the version record (or a record with status "nothing to do").

    A backend that gives up before the first item (a bad model, no server) raises BackendError; one that
    gives up during the run (retries exhausted, circuit open, dead engine) raises RunFailed after the
    version is closed as "failed" with every finished row kept; re-running the same command continues.
    """
    world = prepare(config)
    wanted = world.chosen_targets(config, err)
    stages = stages_for(config)
    store = DatasetStore.open(config.store, {**all_stage_columns(), **{c: t for s in stages for c, t in s.columns.items()}})
    pool = BackendPool(config.backend)
    executor: Executor | None = None
    try:
        if config.fill_gaps:
            wanted = without_kept_rows(wanted, store, config, err)
            if not wanted:
                out.write(f"nothing to do: every target has a kept row in {config.store}\n")
                return {"status": "nothing to do", "planned": 0, "skipped": 0}
        targets = plan(world, config, wanted)
        if any(s.role for s in stages):
            identities = {role: pool.identify(spec) for role, spec in config.role_models().items()}
            models = {role: str(identity) for role, identity in identities.items()}
        else:  # an LLM-free mode (pairing): no model is resolved, started or recorded
            identities, models = {}, {role: NO_MODEL for role in config.role_models()}
        done, _ = store.stored_keys()
        key = checks_key(stages, models)
        stored_items = {k for k, _ in done}
        tag = config.key_tag()
        keys = [item_key(t, models["generator"], config.hide_fold, tag) for t in targets]
        new = [(t, k) for t, k in zip(targets, keys) if (k, key) not in done]
        todo = [t for t, _ in new]
        skipped = len(targets) - len(todo)
        rejudged = sum(1 for _, k in new if k in stored_items)
        if config.limit is not None:
            todo = todo[: config.limit]
        if not todo:
            out.write(f"nothing to do: {len(targets)} planned items, {skipped} already in {config.store}\n")
            return {"status": "nothing to do", "planned": len(targets), "skipped": skipped}
        if rejudged:
            err.write(f"note: {rejudged} planned items are in {config.store} with other check settings; they are "
                      "judged again into the new version (generator answers replay from the request cache)\n")
        if config.request_cache and identities:
            pool.cache = RequestCache(config.request_cache_path(), without="--no-request-cache")
        kept = store.read("train", ["QuestionId", "QuestionText", "BaseQuestionId", "IncorrectAnswerText"])
        data = RunData.of(world)
        executor = make_executor(config, data, models, pool, err)
        backends = open_backends(pool, config, stages, models) if executor.opens_backends else {}
        engine = Engine(config, stages, make_context(data, world.embedder, config, backends, {}, kept), models)
        check_templates(stages, todo[0])
        engine.setup(engine.ordered_stages)
        executor.start(engine, todo)
        used = {role: {"name": i.name, "weights_sha256": i.weights, "backend": i.backend}
                for role, i in identities.items() if any(s.role == role for s in stages)}
        return write_version(config, world, engine, executor, store, todo, len(targets), skipped, used, out, err)
    finally:
        if executor is not None:
            executor.close()
        pool.close()
        store.close()


def write_version(config: SynthConfig, world: World, engine: Engine, executor: Executor, store: DatasetStore,
                  todo: list[Target], planned: int, skipped: int, used_models: dict, out: TextIO, err: TextIO) -> dict:
    """Commit the executor's results, in plan order, into a new store version; close it with its record."""
    writer = store.new_version({
        "config": config.as_record(),
        "models": used_models,
        "prompt_versions": {s.name: s.version for s in engine.stages if s.version},
        "checks_key": engine.checks_key,
        "clusters": {"embedder": world.embedder.name, "params": config.cluster.as_dict(),
                     **world.clustering.stats(), "ids": sorted({t.cluster_id for t in todo})},
        "seed": config.seed, "planned": planned, "skipped_done": skipped, "attempted": len(todo),
    }, flush_every=config.flush_every)
    usage = engine.usage
    progress = Progress(len(todo), usage, enabled=config.progress, stream=err)
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    status = "failed"
    try:
        for result in executor.results(engine, writer.version):
            engine.merge(result)
            engine.commit_stages(result.items, progress)
            for item in result.items:
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
        record = writer.finish(status, usage={n: u.as_dict() for n, u in usage.items()}, executor=executor.record(),
                               usage_by_model=usage_by_model(usage), stages=engine.stage_record(),
                               seconds=round(elapsed, 1),
                               items_per_minute=round(sum(outcomes.values()) / elapsed * 60, 2))
        out.write(summary_table(record, usage, store.read("train", ["QuestionId"]).num_rows))
    return record


__all__ = ["NO_MODEL", "RunFailed", "commit", "run"]
