"""python -m pipelines.infer: rank misconceptions for every wrong answer of a question CSV and write a submission.

Examples:
  python -m pipelines.infer --data-dir data/eedi --questions data/eedi/test.csv --out submission.csv
  python -m pipelines.infer --data-dir data/eedi --questions q.csv --retriever models/run1/retriever \\
      --reranker models/run1/reranker --unseen-boost 2 --out submission.csv
  python -m pipelines.infer --data-dir data/eedi --questions q.csv --reranker none --out submission.csv
  python -m pipelines.infer --data-dir data/eedi --questions q.csv --reranker-kind listwise --out submission.csv
  python -m pipelines.infer --data-dir data/eedi --questions q.csv --reranker-base-url http://127.0.0.1:8080/v1 \\
      --out submission.csv       # listwise, zero-shot, through any OpenAI-compatible server with logprobs

The questions CSV is in the competition's wide format (test.csv): one row per question,
AnswerAText..AnswerDText, CorrectAnswer; other columns (labels, ids) are ignored.  The
submission has one row per wrong answer, in input order: QuestionId_Answer and the 25
best MisconceptionIds, best first, separated by spaces.

Models: --retriever and --reranker default to the newest run under --models (folders
written by python -m pipelines.train, newest by their training card), else the embedded
models zero-shot (all-MiniLM-L6-v2; Qwen2.5-Coder-0.5B-Instruct as reranker).

Rerankers: pointwise scores one candidate per forward pass (Yes/No); listwise shows
--rerank-window lettered candidates per prompt and reads every letter's probability from
one pass, each window also in reversed order unless --rerank-orders forward.  A served
model (--reranker-base-url; llama.cpp's server needs --logits_all true for logprobs)
reranks listwise through the same client as the factory: retries, a request cache
(--request-cache) and token accounting.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from eedi import DATA_DIR_ENV, DataError, resolve_data_dir
from embeddings import EmbedderError
from llm import BackendError
from rankers import ModelError
from pipelines.args import (UsageError, add_listwise_args, check_output, count, positive, positive_floats, run_main,
                            weight)
from inference.build import ZERO_SHOT_RERANKER
from inference.ranking import DEFAULT_FUSE
from prompts import TemplateError

USER_ERRORS = (DataError, ModelError, EmbedderError, TemplateError, BackendError)
DEFAULT_BOOST = 1.0  # the measured effect of --unseen-boost: docs/results/2026-11-22-first-folds-mixing-and-boost.md


def _boost(value: str) -> float:
    b = float(value)
    if not b > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return b


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.infer", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"folder with misconception_mapping.csv and train.csv (default ${DATA_DIR_ENV}, "
                        "else ./data/eedi); train.csv tells which misconceptions have real rows")
    p.add_argument("--questions", required=True, metavar="CSV", help="questions in the competition's wide format")
    p.add_argument("--out", required=True, metavar="CSV", help="the submission file to write")
    p.add_argument("--models", default="models", metavar="DIR",
                   help="where pipelines.train runs live; the newest is the default model (default ./models)")
    p.add_argument("--retriever", metavar="DIR|embedded", action="append",
                   help="a sentence-transformers folder, or 'embedded' (all-MiniLM-L6-v2 zero-shot); repeat for an "
                        "ensemble (default: the newest trained, else embedded)")
    p.add_argument("--ensemble", choices=("rank", "score"), default="rank",
                   help="several --retriever: combine their top 100 by a weighted average of ranks or of cosine "
                        "scores (default rank)")
    p.add_argument("--ensemble-weights", type=positive_floats, metavar="W,...",
                   help="one weight per --retriever, in order (default: equal)")
    p.add_argument("--reranker", metavar="DIR|MODEL|none",
                   help="a trained reranker folder, a base model (preset or .gguf, zero-shot) or none "
                        f"(default: the newest trained, else {ZERO_SHOT_RERANKER} zero-shot)")
    p.add_argument("--rerank-top", type=count, default=8, metavar="N",
                   help="the retriever's top N are reranked (default 8; 0: no reranking)")
    p.add_argument("--reranker-kind", choices=("pointwise", "listwise"),
                   help="pointwise: one candidate per forward pass; listwise: lettered candidates per pass "
                        "(default: a trained reranker's own kind; pointwise for a base model; listwise with "
                        "--reranker-base-url)")
    p.add_argument("--reranker-base-url", metavar="URL",
                   help="rerank listwise through this OpenAI-compatible server (zero-shot, the served model)")
    p.add_argument("--reranker-model", metavar="NAME",
                   help="with --reranker-base-url: the served model (default: the first the server lists)")
    p.add_argument("--request-cache", metavar="FILE",
                   help="with --reranker-base-url: sqlite file of the server's answers, replayed on re-runs "
                        "(default <cache>/requests/rerank.sqlite)")
    add_listwise_args(p, served=True)
    p.add_argument("--rerank-stride", type=positive, metavar="S",
                   help="listwise: step between windows when more than K are reranked (default K)")
    p.add_argument("--rerank-skip-margin", type=float, metavar="M",
                   help="do not rerank a wrong answer whose first-stage score of its first candidate leads the second "
                        "by M or more (the retriever is confident; cosine for one retriever, weighted rank for a rank "
                        "ensemble) (default: rerank every one)")
    p.add_argument("--rerank-fuse", type=weight, default=DEFAULT_FUSE, metavar="W",
                   help="order the reranked candidates by the reranker's log-probability plus W x the retriever's "
                        "(cosine x 20): 1 multiplies the two models' probabilities, so an unsure reranker keeps the "
                        f"retriever's order; 0: the reranker's alone (default {DEFAULT_FUSE:g}: docs/inference.md)")
    p.add_argument("--unseen-boost", type=_boost, default=DEFAULT_BOOST, metavar="B",
                   help="multiply the probability of misconceptions with no row in train.csv by B "
                        f"(default {DEFAULT_BOOST:g}: see docs/evaluation.md)")
    p.add_argument("--batch-size", type=positive, default=256, metavar="N",
                   help="wrong answers retrieved per batch; memory is N x 2,587 scores (default 256)")
    p.add_argument("--threads", type=positive, metavar="N", help="CPU threads for torch (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from eedi import load_eedi, load_questions
    from inference import Ensemble, rank_rows
    from inference.build import build_reranker, build_retriever, choose_reranker, choose_retrievers
    from llm import cache_dir
    from store.files import open_atomic

    started = time.perf_counter()
    questions, out = Path(args.questions), Path(args.out)
    check_output(out, "--out")
    if out.exists() and questions.exists() and os.path.samefile(out, questions):
        raise UsageError(f"--out {out} is the --questions file: the submission would replace it; choose another file")
    data_dir = resolve_data_dir(args.data_dir)
    data = load_eedi(data_dir)
    if not questions.is_file():
        raise DataError(f"{questions}: questions file not found")
    pairs = load_questions(questions)
    if not pairs:
        raise DataError(f"{questions}: no questions")
    models = Path(args.models)
    specs = choose_retrievers(models, args.retriever)
    reranker_spec = choose_reranker(models, args.reranker, args.rerank_top, served=bool(args.reranker_base_url))
    print(f"infer: {len(pairs):,} wrong answers of {len({p.QuestionId for p in pairs}):,} questions in {questions}",
          flush=True)
    retriever = build_retriever(specs, data.misconceptions, args.ensemble, args.ensemble_weights, cache=cache_dir(),
                                log=lambda m: print(m, flush=True))
    reranker = build_reranker(reranker_spec, args.reranker_kind, args.rerank_window, args.rerank_stride,
                              args.rerank_orders, base_url=args.reranker_base_url if args.rerank_top else None,
                              model=args.reranker_model,
                              request_cache=Path(args.request_cache) if args.request_cache else None)
    if reranker:
        print(f"reranker: {reranker.name}, top {args.rerank_top} reranked"
              + (f" in windows of {args.rerank_window}{', both orders' if args.rerank_orders == 'both' else ''}"
                 if reranker.kind == "listwise" else "")
              + (f", fused with the retriever (weight {args.rerank_fuse:g})" if args.rerank_fuse else "")
              + ("; untrained pointwise, it lowered MAP@25 in our evaluation, docs/results (--reranker none skips it)"
                 if not reranker.trained and reranker.kind == "pointwise" else ""), flush=True)
    unseen = {m for m, n in data.real_row_counts().items() if n == 0}
    if args.unseen_boost != 1.0:
        print(f"unseen boost: x{args.unseen_boost:g} for {len(unseen):,} misconceptions with no row in train.csv",
              flush=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    stats: dict = {}
    bar = tqdm(total=len(pairs), unit="pair", desc="infer", file=sys.stderr, disable=args.no_progress,
               mininterval=1.0 if sys.stderr.isatty() else 15.0, dynamic_ncols=True)
    try:
        with open_atomic(out, "w", encoding="utf-8", newline="") as f:  # the whole submission, or none
            f.write("QuestionId_Answer,MisconceptionId\n")
            for pair, ids in zip(pairs, rank_rows(pairs, retriever, data.misconceptions, k=25, reranker=reranker,
                                                  top_n=args.rerank_top, unseen=unseen, boost=args.unseen_boost,
                                                  batch_size=args.batch_size, skip_margin=args.rerank_skip_margin,
                                                  stats=stats, fuse=args.rerank_fuse)):
                f.write(f"{pair.key},{' '.join(map(str, ids))}\n")
                bar.update(1)
    finally:
        bar.close()
        if reranker:
            reranker.close()
    seconds = time.perf_counter() - started
    print(f"wrote {out}: {len(pairs):,} rows in {seconds:.0f} s ({len(pairs) / seconds:.1f} pairs/s overall)")
    if isinstance(retriever, Ensemble):
        for member, share, agree in zip(retriever.members, retriever.contribution, retriever.agreement):
            print(f"ensemble member {member.path}: {share / max(1, 25 * retriever.rows):.0%} of the final top 25 in its "
                  f"own top 25; its first candidate is the ensemble's for {agree / max(1, retriever.rows):.0%} of rows")
    if reranker:
        print(f"reranked {stats.get('reranked', 0):,} wrong answers"
              + (f", skipped {stats.get('skipped', 0):,} (first-stage margin >= {args.rerank_skip_margin:g})"
                 if args.rerank_skip_margin is not None else ""))
    usage = getattr(reranker, "usage", None)
    if usage is not None:
        print(f"reranker requests: {usage.requests} ({usage.replayed} from the cache), {usage.prompt_tokens:,} prompt "
              f"tokens, {usage.retries} retries, {usage.seconds:.0f} s; {reranker.scorer.unreadable} answers without a "
              "letter")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reranker_base_url and args.reranker not in (None, "none"):
        parser.error("--reranker-base-url reranks with the served model: drop --reranker")
    if args.reranker_base_url and args.reranker_kind == "pointwise":
        parser.error("--reranker-base-url reranks listwise (letters' logprobs): drop --reranker-kind pointwise")
    if (args.reranker_model or args.request_cache) and not args.reranker_base_url:
        parser.error("--reranker-model and --request-cache are for a served reranker: they need --reranker-base-url")
    return run_main(run, args, USER_ERRORS, "interrupted: no submission written")


if __name__ == "__main__":
    sys.exit(main())
