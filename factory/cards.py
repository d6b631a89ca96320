"""``factory.write_cards(config)``: the teacher's misconception card for every misconception, into the store.

One LLM request per misconception (``generators.card.CardWriter``), in batches of ``--batch-size``; every card
is journalled as it is made (``store.cards.CardLog``) and every answer is kept in the request cache, so a kill
loses only the batch in flight and the same command continues where it stopped.  Cards already in the store
for the same teacher model and prompt version are skipped.  A card the teacher fails to write within
``--max-attempts`` is kept as a reject with its reason and raw answer.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from factory.config import SynthConfig
from factory.report import Progress
from factory.world import ConfigError
from generators.card import CardWriter
from llm import BackendError, BackendPool, RequestCache, Usage
from llm.step import run_steps
from store import DatasetStore
from store.cards import CardLog, card_key, recover_cards, stored_card_keys


def write_cards(config: SynthConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> dict:
    """Write the missing cards; returns the card run's record (or one with status "nothing to do")."""
    from eedi import load_eedi

    names = load_eedi(config.data_dir).misconceptions
    wanted = sorted(names) if config.misconceptions is None else sorted(set(config.misconceptions))
    unknown = [m for m in wanted if m not in names]
    if unknown:
        raise ConfigError(f"misconception {unknown[0]} is not in {config.data_dir}/misconception_mapping.csv")
    step = CardWriter()
    store = DatasetStore.open(config.store)
    pool = BackendPool(config.backend)
    try:
        identity = pool.identify(config.teacher_model)
        model = str(identity)
        recover_cards(config.store)  # a killed run's journalled cards count as done, and are not made again
        done = stored_card_keys(config.store)
        todo = [m for m in wanted if card_key(m, model, step.version) not in done]
        if config.limit is not None:
            todo = todo[: config.limit]
        if not todo:
            out.write(f"nothing to do: the {len(wanted)} cards asked for are in {config.store} "
                      f"({model}, prompt {step.version})\n")
            return {"status": "nothing to do", "planned": len(wanted)}
        if config.request_cache:
            pool.cache = RequestCache(config.request_cache_path(), without="--no-request-cache")
        rows = [{"MisconceptionId": m, "MisconceptionName": names[m], "Seed": config.seed} for m in todo]
        step.prompt(rows[0])  # a template error stops the run before any LLM call
        backend = pool.open(config.teacher_model)
        log = CardLog(config.store, {"model": {"name": model, "weights_sha256": identity.weights,
                                               "backend": identity.backend},
                                     "prompt_version": step.version, "seed": config.seed,
                                     "planned": len(wanted), "skipped_done": len(wanted) - len(todo),
                                     "attempted": len(todo)})
        usage = Usage(model=model)
        try:
            record = _run(step, backend, rows, model, config, log, usage, err)
        finally:
            store.write_card()  # the dataset card lists the card shards, also of an interrupted run
        out.write(_summary(record, usage))
        return record
    finally:
        pool.close()
        store.close()


def _run(step: CardWriter, backend, rows: list[dict], model: str, config: SynthConfig, log: CardLog,
         usage: Usage, err: TextIO) -> dict:
    progress = Progress(len(rows), {"card": usage}, enabled=config.progress, stream=err, unit="card", desc="cards")
    batch = config.effective_batch_size()
    started, status = time.perf_counter(), "failed"
    try:
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            for row, outcome in zip(chunk, run_steps(step, backend, chunk, usage, config.max_attempts)):
                log.append({"MisconceptionId": row["MisconceptionId"], "MisconceptionName": row["MisconceptionName"],
                            "Card": outcome.value if outcome.ok else "", "TeacherModel": model,
                            "PromptVersion": step.version,
                            "CardKey": card_key(row["MisconceptionId"], model, step.version),
                            "Seed": row["Seed"], "Attempts": outcome.attempts,
                            "RejectReason": "" if outcome.ok else outcome.error,
                            "RawOutput": "" if outcome.ok else outcome.raw[:4000]})
                progress.update("kept" if outcome.ok else "rejected")
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BackendError as e:
        raise BackendError(f"{e}; the cards made so far are kept: re-run the same command to continue") from None
    finally:
        progress.close()
        elapsed = time.perf_counter() - started
        done = sum(log.counts.values())
        record = log.finish(status, usage=usage.as_dict(), seconds=round(elapsed, 1),
                            cards_per_hour=round(done / elapsed * 3600, 1) if elapsed else 0.0)
    return record


def _summary(record: dict, usage: Usage) -> str:
    counts = record["counts"]
    done = counts["kept"] + counts["rejected"]
    per_card = usage.completion_tokens / usage.requests if usage.requests else 0
    return (f"\ncard run {record['id']} ({record['status']}) in {record['seconds']:.0f} s\n"
            f"  cards kept {counts['kept']}, rejected {counts['rejected']}"
            + (f", keep rate {counts['kept'] / done:.0%}" if done else "") + "\n"
            f"  cards/hour {record['cards_per_hour']}; {usage.requests} requests ({usage.replayed} replayed), "
            f"{usage.prompt_tokens / max(usage.requests, 1):.0f} prompt + {per_card:.0f} output tokens a request, "
            f"{usage.tokens_per_second():.1f} output tok/s; model {usage.model}\n")


__all__ = ["write_cards"]
