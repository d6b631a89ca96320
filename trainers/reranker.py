"""Training the reranker, an LLM that scores candidate misconceptions, with LoRA.

The base, its tokenizer, the prompts and the scores are ``rankers.reranker`` (pointwise: logit
"Yes" - logit "No" at the assistant's first token, one prompt per candidate) and ``rankers.listwise``
(listwise: the letters' logits at the first token of one prompt listing the candidates).

Training: each group is one row's true misconception plus misconceptions drawn at random from
the retriever's top ``candidates`` (never the true one): ``negatives`` of them (pointwise), or
K - 1 with K drawn per group from ``listwise_sizes(window)`` (listwise, as 2nd place varied K),
shown in a shuffled order.  The loss is cross-entropy over the group's scores (pointwise) or
over the K letters (listwise), the true one as the target.  LoRA adapters (peft) are the only
trained weights; with CUDA and bitsandbytes a transformers-folder base is loaded in 4 bits (QLoRA).

CPU budget: a forward and backward pass of a 0.5B model over a group of 4 prompts of
at most 192 tokens takes seconds on 2 cores, so the CPU default is a step budget
(``steps``), short prompts (``max_tokens``), few negatives, and LoRA on the last
``lora_layers`` layers only: the backward pass stops there
(docs/results/2026-11-21-training-on-2-cores.md).
"""
from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from eedi.metrics import ranking_metrics
from rankers.listwise import DEFAULT_WINDOW, ModelScorer, Windows
from rankers.reranker import (
    DEFAULT_BASE,
    Base,
    PromptBuilder,
    answer_ids,
    last_logits,
    load_model,
    load_tokenizer,
    resolve_base,
    score,
)
from trainers import TrainError
from trainers.data import Example


@dataclass
class RerankerConfig:
    base: str = DEFAULT_BASE
    steps: int = 30  # optimizer steps (the budget)
    groups_per_step: int = 1  # rows per step; each row is one group of 1 + negatives prompts
    negatives: int = 3
    candidates: int = 25  # negatives are drawn from the retriever's top this many
    lr: float = 2e-4
    warmup_steps: int = 3
    lora_r: int = 8
    lora_alpha: int = 16
    lora_layers: int | None = 8  # LoRA on the last N transformer layers (None: all)
    max_tokens: int = 192  # prompt length cap; the question is shortened to fit
    with_rationale: bool = False
    eval_queries: int = 8  # held-out rows reranked after training (0: none)
    eval_top: int = 8  # the retriever's top this many are reranked
    quantize_4bit: bool = True  # QLoRA when CUDA and bitsandbytes are present
    scoring: str = "pointwise"  # or "listwise"
    window: int = DEFAULT_WINDOW  # listwise: the most candidates per prompt (K is drawn per group)
    listwise_max_tokens: int = 768
    seed: int = 0

    def record(self) -> dict:
        return asdict(self)


def listwise_sizes(window: int) -> list[int]:
    """The K a listwise group is drawn from: half, three quarters and all of the window."""
    return sorted({max(2, window // 2), max(2, 3 * window // 4), window})


def add_lora(model, config: RerankerConfig):
    from peft import LoraConfig, get_peft_model

    layers = model.config.num_hidden_layers
    chosen = None
    if config.lora_layers is not None and config.lora_layers < layers:
        chosen = list(range(layers - config.lora_layers, layers))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      layers_to_transform=chosen)
    return get_peft_model(model, lora)


@dataclass
class RerankerResult:
    path: Path
    base: Base
    precision: str
    steps: int
    losses: list[float]
    evaluation: dict
    seconds: dict
    trainable_parameters: int


def train_reranker(train: list[Example], val: list[Example], misconceptions: dict[int, str], rank: Callable,
                   config: RerankerConfig, out: Path, resume_from: Path | None = None, progress: bool = True,
                   log: Callable[[str], None] = print) -> RerankerResult:
    """Train LoRA adapters and save them (with the tokenizer) to ``out``.

    ``rank(rows, k, exclude)`` is the retriever: top-k misconception ids per row, ``exclude``
    (a true id per row, or None) left out.
    """
    import torch
    from tqdm import tqdm

    if not train:
        raise TrainError("no training rows")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    base = resolve_base(config.base)
    tokenizer = load_tokenizer(base)
    yes, no = answer_ids(tokenizer)
    model, precision = load_model(base, config.quantize_4bit, log)
    seconds["load"] = round(time.perf_counter() - t0, 1)
    if resume_from is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(resume_from), is_trainable=True)
    else:
        model = add_lora(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"reranker: base {base.name} ({base.kind}, {precision}) loaded in {seconds['load']:.0f} s; "
        f"{trainable:,} LoRA parameters" + (f", resumed from {resume_from}" if resume_from else ""))

    # Rows and their negatives from the retriever (drawn from its top candidates).
    t0 = time.perf_counter()
    needed = config.steps * config.groups_per_step
    order = list(range(len(train)))
    rng.shuffle(order)
    picked = [train[order[i % len(order)]] for i in range(needed)]
    top = rank([e.row for e in picked], config.candidates, [e.misconception_id for e in picked])
    listwise = config.scoring == "listwise"
    sizes = listwise_sizes(config.window)
    groups = [(e, rng.sample(cands, min((rng.choice(sizes) - 1) if listwise else config.negatives, len(cands))))
              for e, cands in zip(picked, top)]
    seconds["candidates"] = round(time.perf_counter() - t0, 1)

    build = PromptBuilder(tokenizer, config.max_tokens, config.with_rationale)
    lister = ModelScorer(model, tokenizer, Windows(config.window), config.listwise_max_tokens,
                         config.with_rationale) if listwise else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps)))
    pad = tokenizer.pad_token_id
    losses: list[float] = []
    bar = tqdm(total=config.steps, unit="step", desc="reranker", file=sys.stderr, disable=not progress,
               mininterval=1.0 if sys.stderr.isatty() else 15.0, dynamic_ncols=True)
    model.train()
    t0 = time.perf_counter()
    for step in range(config.steps):
        batch = groups[step * config.groups_per_step:(step + 1) * config.groups_per_step]
        loss = 0.0
        for example, negatives in batch:
            ids = [example.misconception_id, *negatives]
            if listwise:  # one prompt, the candidates shuffled; the target is the true one's letter
                shown = rng.sample(range(len(ids)), len(ids))
                prompt = lister.prompt_ids(example.row, [misconceptions[ids[i]] for i in shown])
                scores = last_logits(model, [prompt], pad)[0][lister.letters[:len(ids)]]
                target = shown.index(0)
            else:
                scores = score(model, [build(example.row, misconceptions[m]) for m in ids], pad, yes, no)
                target = 0
            group_loss = torch.nn.functional.cross_entropy(scores[None, :], torch.tensor([target],
                                                                                        device=scores.device))
            (group_loss / len(batch)).backward()
            loss += group_loss.item() / len(batch)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss, 4))
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)
    bar.close()
    seconds["train"] = round(time.perf_counter() - t0, 1)
    seconds["per_step"] = round(seconds["train"] / max(1, config.steps), 2)
    log(f"reranker: {config.steps} steps in {seconds['train']:.0f} s ({seconds['per_step']:.1f} s/step); "
        f"loss first {_mean(losses[:5]):.3f} -> last {_mean(losses[-5:]):.3f} (mean of 5 steps)")

    t0 = time.perf_counter()
    # a fresh generator: the same held-out rows for every run with this seed, so runs compare
    evaluation = evaluate(model, tokenizer, val, misconceptions, rank, config, random.Random(config.seed)) \
        if config.eval_queries else {}
    seconds["eval"] = round(time.perf_counter() - t0, 1)
    if evaluation:
        r, rr = evaluation["retriever"], evaluation["reranked"]
        log(f"reranker: on {r['queries']} held-out rows, MAP@25 {r['map@25']:.4f} (retriever) -> "
            f"{rr['map@25']:.4f} (top {config.eval_top} reranked) ({seconds['eval']:.0f} s)")

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return RerankerResult(path=out, base=base, precision=precision, steps=config.steps, losses=losses,
                          evaluation=evaluation, seconds=seconds, trainable_parameters=trainable)


def evaluate(model, tokenizer, val: list[Example], misconceptions: dict[int, str], rank: Callable,
             config: RerankerConfig, rng: random.Random) -> dict:
    """MAP@25 of the retriever's ranking and of the same ranking with its top ``eval_top`` reranked."""
    import torch

    if not val:
        return {}
    rows = rng.sample(val, min(config.eval_queries, len(val)))
    ranked = rank([e.row for e in rows], 25, None)
    yes, no = answer_ids(tokenizer)
    build = PromptBuilder(tokenizer, config.max_tokens, config.with_rationale)
    lister = ModelScorer(model, tokenizer, Windows(config.window), config.listwise_max_tokens,
                         config.with_rationale) if config.scoring == "listwise" else None
    reranked = []
    model.eval()
    with torch.no_grad():
        for example, ids in zip(rows, ranked):
            head = ids[:config.eval_top]
            if config.scoring == "listwise":
                scores = lister.score(example.row, [misconceptions[m] for m in head])
            else:
                scores = score(model, [build(example.row, misconceptions[m]) for m in head],
                               tokenizer.pad_token_id, yes, no).tolist()
            order = sorted(range(len(head)), key=lambda i: -scores[i])
            reranked.append([head[i] for i in order] + ids[config.eval_top:])
    truths = [e.misconception_id for e in rows]
    return {"retriever": ranking_metrics(ranked, truths), "reranked": ranking_metrics(reranked, truths),
            "top": config.eval_top}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
