"""python -m pipelines.train: train a retriever, then an LLM reranker, on real rows plus chosen synthetic dataset versions.

Examples:
  python -m pipelines.train --data-dir data/eedi --out models/real-only
  python -m pipelines.train --data-dir data/eedi --store synth-store --versions latest --out models/run1
  python -m pipelines.train --data-dir data/eedi --store synth-store --resume-from models/run1 --out models/run2

--resume-from continues from a previous --out with only the store versions made after the
newest one it used (or after --since VERSION); real rows are always included.  Writes
OUT/retriever (a sentence-transformers folder) and OUT/reranker (a peft LoRA adapter), each
with training_card.json and README.md: data versions and shards, row counts,
hyperparameters, validation MAP@25 and recall@25, timings and lineage.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from eedi import DATA_DIR_ENV, DataError
from embeddings import EmbedderError
from rankers import ModelError
from rankers.reranker import DEFAULT_BASE
from pipelines.args import check_output, count, positive, repeat, run_main
from prompts import TemplateError
from store import StoreError
from trainers import TrainError
from trainers.lineage import DEFAULT_HOLDOUT
from trainers.reranker import RerankerConfig
from trainers.retriever import RetrieverConfig

USER_ERRORS = (DataError, TrainError, ModelError, StoreError, EmbedderError, TemplateError)
R, RR = RetrieverConfig(), RerankerConfig()


def _fraction(value: str) -> float:
    x = float(value)
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return x


def _ratio(value: str) -> float:
    x = float(value)
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (inf: no limit), got {value}")
    return x


def _margin(value: str) -> float | None:
    if value == "none":
        return None
    x = float(value)
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] or none, got {value}")
    return x


def _layers(value: str) -> int | None:
    return None if value == "all" else positive(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.train", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("data and output")
    io.add_argument("--data-dir", metavar="DIR",
                    help=f"folder with the competition CSVs (default ${DATA_DIR_ENV}, else ./data/eedi)")
    io.add_argument("--store", metavar="DIR", help="dataset store with synthetic rows (default: real rows only)")
    io.add_argument("--versions", metavar="latest|all|ID,...",
                    help="store versions to train on: latest (the newest with kept rows), all, or ids "
                         "separated by commas (default latest; with --since or --resume-from: all newer ones)")
    io.add_argument("--since", metavar="VERSION", help="only store versions made after VERSION (needs --store)")
    io.add_argument("--cards", metavar="STORE",
                    help="a store holding misconception cards (synth --misconception-cards): the retriever's "
                         "documents are the names with their cards, kept in its folder so infer uses the same "
                         "text (default: names only; with --resume-from: the cards it was trained with)")
    io.add_argument("--resume-from", metavar="DIR",
                    help="a previous --out: continue training its retriever and reranker; without --since, "
                         "only versions newer than the newest it used")
    io.add_argument("--out", required=True, metavar="DIR", help="where to write retriever/ and reranker/ (new folder)")
    io.add_argument("--no-progress", action="store_true", help="no progress bars")
    io.add_argument("--threads", type=positive, metavar="N",
                    help="CPU threads for torch (default: one per core; on a machine busy with other work, fewer "
                         "threads avoid oversubscription, which slows training several times over)")

    mixing = p.add_argument_group("mixing real and synthetic rows")
    mixing.add_argument("--synth-per-misconception", type=positive, default=4, metavar="N",
                        help="at most N synthetic rows per misconception, best judge score first (default 4)")
    mixing.add_argument("--synth-ratio", type=_ratio, default=1.0, metavar="R",
                        help="at most R synthetic rows per real training row, taken round-robin over "
                             "misconceptions (default 1.0; inf: no limit)")
    mixing.add_argument("--synth-repeat", type=repeat, default=None, metavar="N|auto",
                        help="use each chosen synthetic row N times per epoch; auto: as often as keeps synthetic "
                             "uses within --synth-ratio x real rows (1 x with inf), at most 16 (default auto)")

    val = p.add_argument_group("validation (real rows of misconceptions unseen in training)")
    val.add_argument("--holdout", type=_fraction, default=None, metavar="F",
                     help=f"fraction of the misconceptions with real rows held out (default {DEFAULT_HOLDOUT}; "
                          "0: train on every real row, without validation; "
                          "with --resume-from: the parent's)")
    val.add_argument("--seed", type=int, default=None,
                     help="seed for the holdout, batches and sampling (default 0; with --resume-from: the parent's)")

    r = p.add_argument_group("retriever (sentence-transformers, MultipleNegativesRankingLoss)")
    r.add_argument("--retriever-base", metavar="DIR",
                   help="a sentence-transformers folder, or a decoder-LLM transformers folder (last-token "
                        "pooling) (default: the embedded all-MiniLM-L6-v2)")
    r.add_argument("--epochs", type=positive, default=R.epochs, metavar="N", help=f"epochs (default {R.epochs})")
    r.add_argument("--batch-size", type=positive, default=R.batch_size, metavar="N",
                   help=f"rows per batch; in-batch negatives (default {R.batch_size})")
    r.add_argument("--max-steps", type=count, default=0, metavar="N",
                   help="retriever step budget over all epochs; 0: no budget, every batch of every epoch (default "
                        "0: synthetic rows lifted unseen MAP@25 three times as much in a full epoch as in 50 steps; "
                        "times in docs/training.md)")
    r.add_argument("--eval-every", type=positive, metavar="N",
                   help="also validate every N retriever steps within an epoch (default: after each epoch only)")
    r.add_argument("--lr", type=float, default=R.lr, help=f"retriever learning rate (default {R.lr:g})")
    r.add_argument("--hard-negatives", type=count, default=R.hard_negatives, metavar="K",
                   help="hard negatives per row, mined with the starting model, never the true misconception "
                        f"(default {R.hard_negatives})")
    r.add_argument("--negative-margin", type=_margin, default=R.negative_margin, metavar="M|none",
                   help="skip mined names scoring at least M x the true name's score, mostly near-synonyms "
                        f"of the truth (default {R.negative_margin}; none: keep the top ones)")
    r.add_argument("--max-seq-length", type=positive, default=R.max_seq_length, metavar="N",
                   help=f"retriever tokens per text (default {R.max_seq_length})")
    r.add_argument("--with-rationale", action="store_true",
                   help="add the synthetic rows' rationale to the retriever's and reranker's query text")
    r.add_argument("--lora", action="store_true", help="LoRA (peft) instead of full training: for LLM retriever bases")

    rr = p.add_argument_group("reranker (LLM with LoRA: pointwise logit Yes - logit No, or listwise letters)")
    rr.add_argument("--reranker-kind", choices=("pointwise", "listwise"), default="pointwise",
                    help="pointwise: one candidate per prompt, Yes/No; listwise: K lettered candidates per prompt, "
                         "cross-entropy on the true letter, K drawn per row from half, 3/4 and all of "
                         "--rerank-window (default pointwise)")
    rr.add_argument("--rerank-window", type=positive, default=RR.window, metavar="K",
                    help=f"listwise: the most candidates per prompt, at most 26 (default {RR.window})")
    rr.add_argument("--reranker-base", default=DEFAULT_BASE, metavar="MODEL",
                    help=f"a preset, a .gguf file or a transformers folder (default {DEFAULT_BASE}, loaded from "
                         "its GGUF)")
    rr.add_argument("--reranker-steps", type=positive, default=RR.steps, metavar="N",
                    help=f"reranker step budget (default {RR.steps}: about 5 minutes for the 0.5B on 2 CPU cores, "
                         "9-10 s per step)")
    rr.add_argument("--groups-per-step", type=positive, default=RR.groups_per_step, metavar="N",
                    help=f"rows per reranker step (default {RR.groups_per_step})")
    rr.add_argument("--negatives", type=positive, default=RR.negatives, metavar="N",
                    help=f"negatives per row, drawn from the retriever's top {RR.candidates} (default {RR.negatives})")
    rr.add_argument("--reranker-lr", type=float, default=RR.lr, help=f"reranker learning rate (default {RR.lr:g})")
    rr.add_argument("--reranker-max-tokens", type=positive, default=RR.max_tokens, metavar="N",
                    help=f"prompt length cap; the question is shortened to fit (default {RR.max_tokens})")
    rr.add_argument("--lora-layers", type=_layers, default=RR.lora_layers, metavar="N|all",
                    help=f"LoRA on the last N layers only; the backward pass stops there (default {RR.lora_layers})")
    rr.add_argument("--rerank-eval", type=count, default=RR.eval_queries, metavar="N",
                    help=f"held-out rows whose retriever top {RR.eval_top} are reranked after training "
                         f"(default {RR.eval_queries}; 0: none)")
    rr.add_argument("--skip-reranker", action="store_true", help="train the retriever only")
    return p


def _log(message: str) -> None:
    print(message, flush=True)


def run(args: argparse.Namespace) -> int:
    from trainers.data import MixRule
    from trainers.job import TrainJob, train_job

    started = time.perf_counter()
    out = Path(args.out)
    check_output(out, "--out", folder=True)
    job = TrainJob(
        out=out, data_dir=args.data_dir, store=Path(args.store) if args.store else None, versions=args.versions,
        since=args.since, cards=Path(args.cards) if args.cards else None, resume_from=Path(args.resume_from) if args.resume_from else None, holdout=args.holdout,
        seed=args.seed, mix=MixRule(args.synth_per_misconception, args.synth_ratio, repeat=args.synth_repeat),
        retriever=RetrieverConfig(
            base=args.retriever_base, epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps or None,
            lr=args.lr, hard_negatives=args.hard_negatives, negative_margin=args.negative_margin,
            eval_every=args.eval_every, with_rationale=args.with_rationale, max_seq_length=args.max_seq_length,
            lora=args.lora),
        reranker=None if args.skip_reranker else RerankerConfig(
            base=args.reranker_base, steps=args.reranker_steps, groups_per_step=args.groups_per_step,
            negatives=args.negatives, lr=args.reranker_lr, max_tokens=args.reranker_max_tokens,
            lora_layers=args.lora_layers, with_rationale=args.with_rationale, eval_queries=args.rerank_eval,
            scoring=args.reranker_kind, window=args.rerank_window),
        progress=not args.no_progress, command=["python", "-m", "pipelines.train", *sys.argv[1:]])
    result = train_job(job, log=_log)
    if result.retriever is not None:
        _summary(out, result.retriever, result.reranker, time.perf_counter() - started)
    return 0


def _summary(out: Path, r, rr, seconds: float) -> None:
    lines = ["", f"trained in {seconds:.0f} s -> {out}",
             (f"  retriever  {out / 'retriever'}: {r.steps} steps, {r.examples:,} examples in "
              f"{r.train_seconds:.0f} s ({r.examples_per_second:g} examples/s)")]
    if r.history:
        first, last = r.history[0], r.history[-1]
        lines.append(f"    validation MAP@25 {first['map@25']:.4f} -> {last['map@25']:.4f}, recall@25 "
                     f"{first['recall@25']:.4f} -> {last['recall@25']:.4f} ({last['queries']} held-out rows)")
    else:
        lines.append("    no validation (--holdout 0)")
    if rr is not None:
        lines.append(f"  reranker   {out / 'reranker'}: {rr.steps} steps in {rr.seconds['train']:.0f} s "
                     f"({rr.seconds['per_step']:g} s/step), load {rr.seconds['load']:.0f} s")
        if rr.evaluation:
            lines.append(f"    rerank of the retriever's top {rr.evaluation['top']} on "
                         f"{rr.evaluation['reranked']['queries']} held-out rows: MAP@25 "
                         f"{rr.evaluation['retriever']['map@25']:.4f} -> {rr.evaluation['reranked']['map@25']:.4f}")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.since and not args.store:
        parser.error("--since needs --store")
    if args.versions and not args.store:
        parser.error("--versions needs --store")
    if args.lr <= 0 or args.reranker_lr <= 0:
        parser.error("learning rates must be positive")
    if not 2 <= args.rerank_window <= 26:
        parser.error("--rerank-window must be in 2..26 (one letter per candidate)")
    if math.isnan(args.synth_ratio):
        parser.error("--synth-ratio must be a number")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub while training
    return run_main(run, args, USER_ERRORS, "interrupted: nothing was saved for the stage in progress")


if __name__ == "__main__":
    sys.exit(main())
