"""Training the retriever: a sentence-transformers bi-encoder from a (question, wrong answer) to its misconception.

Loading a base, encoding and the name index are ``rankers.retriever``; query and document
texts come from ``rankers.texts``.

Training uses ``MultipleNegativesRankingLoss``: each query's candidates are every document in the
batch (in-batch negatives) plus ``hard_negatives`` misconceptions mined with the
*starting* model (its top-ranked names, never the true one).  A batch never holds
two rows whose misconception ids overlap, counting positives and hard negatives, so
no document is a positive for one row and a negative for another.

Bases: a sentence-transformers folder (default: the embedded all-MiniLM-L6-v2), or a plain
transformers folder of a decoder LLM (last-token pooling); for the latter ``lora=True`` trains
LoRA adapters (peft) instead of all weights, merged into the weights before saving so the
result is a plain folder.

Validation after each epoch (and before the first): rank all misconception names for
the held-out real rows and report MAP@k and recall@k.
"""
from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eedi.metrics import ranking_metrics
from rankers.retriever import Index, load_encoder
from rankers.texts import doc_text, query_text
from trainers import TrainError
from trainers.data import Example


@dataclass
class RetrieverConfig:
    base: str | None = None  # None: the embedded all-MiniLM-L6-v2
    epochs: int = 1
    batch_size: int = 32
    max_steps: int | None = None  # a step budget over all epochs (None: every batch of every epoch)
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    hard_negatives: int = 2
    negative_margin: float | None = 0.95  # skip names scoring >= this x the true name's score (None: keep all)
    with_rationale: bool = False
    max_seq_length: int = 128  # tokens; the question's tail is what gets cut (see rankers.texts)
    lora: bool = False
    lora_r: int = 16
    seed: int = 0
    k: int = 25  # MAP@k, recall@k
    eval_every: int | None = None  # also validate every N steps within an epoch
    encode_batch: int = 64

    def record(self) -> dict:
        return asdict(self)


def mine_hard_negatives(index: Index, queries: list[str], truths: list[int], k: int,
                        margin: float | None) -> list[list[int]]:
    """The k names the starting model ranks highest for each query, never the true one.

    With ``margin`` (positive-aware mining, as in NV-Retriever's TopK-PercPos), names
    scoring at least ``margin`` x the true name's score are skipped: most of those are
    near-synonyms of the truth (false negatives) rather than mistakes to learn from.
    """
    vectors = index.encode(queries)
    out = []
    for start in range(0, len(queries), 1024):
        sims = vectors[start:start + 1024] @ index.vectors.T
        for row, truth in enumerate(truths[start:start + 1024]):
            col = index.row_of[truth]
            positive = float(sims[row, col])
            if margin is not None:
                ceiling = margin * positive if positive > 0 else positive
                sims[row, sims[row] >= ceiling] = -np.inf
            sims[row, col] = -np.inf
        top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        for row, cols in enumerate(top):
            cols = cols[np.argsort(-sims[row, cols], kind="stable")]
            out.append([index.ids[c] for c in cols if np.isfinite(sims[row, c])])
    return out


def evaluate(model, val: list[Example], misconceptions: dict[int, str], k: int,
             with_rationale: bool = False, batch_size: int = 64, index: Index | None = None) -> dict:
    """MAP@k and recall@k of the model on ``val`` (``index``: names already encoded by this model)."""
    if not val:
        return ranking_metrics([], [], k)
    index = index or Index(model, misconceptions, batch_size)
    ranked = index.rank([query_text(e.row, with_rationale) for e in val], k)
    return ranking_metrics(ranked, [e.misconception_id for e in val], k)


def make_batches(examples: list[Example], negatives: list[list[int]], batch_size: int,
                 rng: random.Random) -> list[list[int]]:
    """Shuffled batches of row indices in which no misconception id occurs twice."""
    pending = list(range(len(examples)))
    rng.shuffle(pending)
    batches = []
    while pending:
        batch, used, rest = [], set(), []
        for i in pending:
            ids = {examples[i].misconception_id, *negatives[i]}
            if len(batch) < batch_size and not ids & used:
                batch.append(i)
                used |= ids
            else:
                rest.append(i)
        batches.append(batch)
        pending = rest
    return batches


def _add_lora(model, r: int):
    from peft import LoraConfig, get_peft_model

    encoder = model[0]
    encoder.model = get_peft_model(encoder.model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05,
                                                             target_modules="all-linear"))
    return encoder.model


@dataclass
class RetrieverResult:
    path: Path
    kind: str
    base: Path
    history: list[dict]
    examples: int
    steps: int
    train_seconds: float
    examples_per_second: float
    mine_seconds: float


def train_retriever(train: list[Example], val: list[Example], misconceptions: dict[int, str],
                    config: RetrieverConfig, out: Path, progress: bool = True,
                    log: Callable[[str], None] = print) -> RetrieverResult:
    """Train, validate after each epoch, save a sentence-transformers folder to ``out`` (no card: see pipelines.train)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import (
        MultipleNegativesRankingLoss,
    )
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    if not train:
        raise TrainError("no training rows")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model, kind, base = load_encoder(config.base, config.max_seq_length)
    log(f"retriever: base {base} ({kind}), {len(train):,} training rows, {len(val):,} validation rows")
    if config.lora:
        if kind == "sentence-transformers":
            raise TrainError("--lora is for decoder-LLM folders (last-token pooling); "
                             f"{base} is a sentence-transformers folder: train it fully")
        _add_lora(model, config.lora_r)

    queries = [query_text(e.row, config.with_rationale) for e in train]
    started = time.perf_counter()
    model.eval()
    index = Index(model, misconceptions, config.encode_batch) if config.hard_negatives or val else None
    if config.hard_negatives:
        negatives = mine_hard_negatives(index, queries, [e.misconception_id for e in train], config.hard_negatives,
                                        config.negative_margin)
        ids = sorted(misconceptions)
        for e, negs in zip(train, negatives):  # a margin can leave a row short: top up at random
            while len(negs) < config.hard_negatives:
                pick = rng.choice(ids)
                if pick != e.misconception_id and pick not in negs:
                    negs.append(pick)
    else:
        negatives = [[] for _ in train]
    history = [{"epoch": 0, "step": 0, **evaluate(model, val, misconceptions, config.k, index=index)}] if val else []
    mine_seconds = time.perf_counter() - started
    log(f"retriever: mined {config.hard_negatives} hard negatives per row with the starting model; "
        + (f"before training: {_fmt(history[0], config.k)}" if val else "no validation rows")
        + f" ({mine_seconds:.0f} s)")

    loss_fn = MultipleNegativesRankingLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    batches = make_batches(train, negatives, config.batch_size, rng)
    total = len(batches) * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total), total)
    bar = tqdm(total=total, unit="step", desc="retriever", file=sys.stderr, disable=not progress,
               mininterval=1.0 if sys.stderr.isatty() else 15.0, dynamic_ncols=True)
    step, seen, train_seconds = 0, 0, 0.0
    def validate(epoch: float) -> dict:
        if not val:
            return {}
        model.eval()
        metrics = evaluate(model, val, misconceptions, config.k, False, config.encode_batch)
        history.append({"epoch": round(epoch, 2), "step": step, **metrics})
        model.train()
        return metrics

    for epoch in range(1, config.epochs + 1):
        if epoch > 1:
            batches = make_batches(train, negatives, config.batch_size, rng)
        model.train()
        done = 0
        for batch in batches:
            if step >= total:
                break
            t0 = time.perf_counter()
            columns = [[queries[i] for i in batch],
                       [doc_text(misconceptions[train[i].misconception_id]) for i in batch]]
            columns += [[doc_text(misconceptions[negatives[i][j]]) for i in batch]
                        for j in range(config.hard_negatives)]
            features = [_to(model.preprocess(c), model.device) for c in columns]
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            train_seconds += time.perf_counter() - t0
            step += 1
            done += 1
            seen += len(batch)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            bar.update(1)
            if val and config.eval_every and step % config.eval_every == 0 and step < total and done < len(batches):
                metrics = validate(epoch - 1 + done / len(batches))
                bar.write(f"retriever step {step}/{total}: {_fmt(metrics, config.k)}", file=sys.stdout)
        metrics = validate(epoch - 1 + done / len(batches))  # a step budget can end an epoch early
        bar.write(f"retriever epoch {epoch}: step {step}/{total}" + (f", {_fmt(metrics, config.k)}" if val else ""),
                  file=sys.stdout)
        if step >= total:
            break
    bar.close()

    if config.lora:
        model[0].model = model[0].model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out), create_model_card=False)
    return RetrieverResult(path=out, kind=kind, base=base, history=history, examples=seen, steps=step,
                           train_seconds=round(train_seconds, 1),
                           examples_per_second=round(seen / train_seconds, 1) if train_seconds else 0.0,
                           mine_seconds=round(mine_seconds, 1))


def _to(features: dict, dev) -> dict:
    return {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in features.items()}


def _fmt(metrics: dict, k: int) -> str:
    return (f"MAP@{k} {metrics.get(f'map@{k}', 0):.4f}, recall@{k} {metrics.get(f'recall@{k}', 0):.4f} "
            f"on {metrics.get('queries', 0)} queries")
