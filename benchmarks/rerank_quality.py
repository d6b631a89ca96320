"""MAP@25 of rerankers on one evaluation fold: the retriever alone, + pointwise, + listwise (both orders and
forward), and an ensemble of two retrievers, on the same sampled validation pairs.

    python benchmarks/rerank_quality.py --retriever REPORT/models/MisconceptionId-fold0/real --fold 0 \\
        --folds 10 --pairs 40 [--second-retriever embedded] [--reranker qwen2.5-coder-0.5b] \\
        [--train-steps 60] [--served [--served-preset qwen2.5-coder-1.5b]] [--fuse 1] [--skip pointwise]

The fold is the misconception scheme's (every validation misconception unseen in the fold's training
rows), as in pipelines.evaluate; use a retriever trained on that fold's rows (pipelines.evaluate writes
them under REPORT/models/).  The rerankers are zero-shot, except with --train-steps: a listwise LoRA
trained here on the fold's training rows only (candidates from the same retriever).  --served also
reranks through the embedded llama.cpp server (logprobs), the path of pipelines.infer --reranker-base-url.
Each reranker is also scored fused with the retriever (--fuse weights, infer --rerank-fuse) from the same
answers.  Each line prints the process's peak resident memory so far.
"""
from __future__ import annotations

import argparse
import random
import resource
import tempfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eedi import load_eedi, resolve_data_dir  # noqa: E402
from eedi.metrics import ranking_metrics  # noqa: E402
from eedi.splits import FoldSpec  # noqa: E402
from inference import Ensemble, Memoized, Reranker, Retriever, rank_rows  # noqa: E402
from llm import cache_dir  # noqa: E402
from rankers.listwise import Windows  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir")
    p.add_argument("--retriever", required=True, help="the fold's trained retriever (or 'embedded')")
    p.add_argument("--second-retriever", default="embedded", help="the ensemble's other member (default embedded)")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--rerank-top", type=int, default=8)
    p.add_argument("--reranker", default="qwen2.5-coder-0.5b")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=0,
                   help="also train a listwise reranker on the fold's training rows for N steps (default 0: no)")
    p.add_argument("--train-out", help="where the trained adapter goes (default a temporary folder)")
    p.add_argument("--trained", help="a listwise adapter this benchmark trained before on the same fold (no training)")
    p.add_argument("--served", action="store_true", help="also rerank through the embedded llama.cpp server")
    p.add_argument("--served-preset", default=None, help="the served model's preset (default the embedded default)")
    p.add_argument("--fuse", default="1", help="--rerank-fuse weights also scored, from the same reranker scores "
                   "(default 1; '' for none)")
    p.add_argument("--skip", default="", help="variants to leave out, comma-separated: pointwise,listwise,ensemble")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    fuses = [float(w) for w in args.fuse.split(",") if w.strip()]
    data = load_eedi(resolve_data_dir(args.data_dir))
    train, val = FoldSpec("MisconceptionId", args.folds, 0, args.fold).split(data.train_pairs)
    rows = random.Random(args.seed).sample(val, min(args.pairs, len(val)))
    truths = [r.MisconceptionId for r in rows]
    folder = lambda spec: None if spec == "embedded" else Path(spec)  # noqa: E731
    first = Retriever(folder(args.retriever), data.misconceptions, cache=cache_dir())
    second = Retriever(folder(args.second_retriever), data.misconceptions, cache=cache_dir())
    names = data.misconceptions

    def score(label, retriever, reranker=None):
        memo = Memoized(reranker) if reranker is not None else None
        for fuse in [0.0] + (fuses if reranker is not None else []):
            t0 = time.perf_counter()
            ranked = list(rank_rows(rows, retriever, names, k=25, reranker=memo, top_n=args.rerank_top, fuse=fuse))
            m = ranking_metrics(ranked, truths)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            shown = f"{label}, fused x{fuse:g}" if fuse else label
            rate = f"{len(rows) / (time.perf_counter() - t0):6.2f} pairs/s" if not fuse else " " * 13
            print(f"{shown:<58} MAP@25 {m['map@25']:.4f}  recall@25 {m['recall@25']:.3f}  {rate}  "
                  f"peak RSS {peak:,.0f} MB", flush=True)

    print(f"# fold {args.fold} of {args.folds} (misconception scheme): {len(rows)} of {len(val)} validation pairs; "
          f"retriever {args.retriever}; top {args.rerank_top} reranked by {args.reranker} zero-shot")
    score("retriever alone", first)
    if "ensemble" not in skip:
        score(f"ensemble with {args.second_retriever} (rank)", Ensemble([first, second], "rank"))
        score(f"ensemble with {args.second_retriever} (score)", Ensemble([first, second], "score"))
    k = args.rerank_top
    if "pointwise" not in skip:
        score("+ pointwise", first, Reranker(args.reranker, kind="pointwise"))
    if "listwise" not in skip:
        listwise = Reranker(args.reranker, kind="listwise", windows=Windows(k, reverse=True))
        score("+ listwise, both orders", first, listwise)
        listwise.scorer.windows = Windows(k, reverse=False)
        score("+ listwise, forward only", first, listwise)
        del listwise
    if args.served:
        served(args, rows, score, first, k)
    if args.train_steps or args.trained:
        out = Path(args.trained) if args.trained else Path(args.train_out or tempfile.mkdtemp(prefix="listwise-")) / "reranker"
        if not args.trained:
            train_listwise(args, train, data.misconceptions, out, k)
        trained = Reranker(out, kind="listwise", windows=Windows(k, reverse=True))
        score("+ listwise trained on the fold, both orders", first, trained)
        trained.scorer.windows = Windows(k, reverse=False)
        score("+ listwise trained on the fold, forward", first, trained)


def served(args, rows, score, first, k: int) -> None:
    """The listwise prompt through the embedded llama.cpp server (the path of infer --reranker-base-url)."""
    from inference import ServedReranker
    from llm import DEFAULT_PRESET, resolve_model
    from llm.server import LlamaServer

    model = resolve_model(args.served_preset or DEFAULT_PRESET)
    with tempfile.TemporaryDirectory() as logs, LlamaServer(model.path, alias=model.name, n_ctx=4096,
                                                             log_dir=Path(logs), logits_all=True) as server:
        for reverse in (True, False):
            with tempfile.TemporaryDirectory() as tmp:  # a fresh request cache: every answer is timed
                rr = ServedReranker(server.base_url, windows=Windows(min(k, 20), reverse=reverse),
                                    cache=Path(tmp) / "cache.sqlite")
                try:
                    score(f"+ listwise served {model.name}, {'both orders' if reverse else 'forward'}", first, rr)
                finally:
                    rr.close()


def train_listwise(args, train_pairs, misconceptions: dict[int, str], out: Path, k: int) -> None:
    """A listwise LoRA on the fold's training rows only, with a card so Reranker loads it."""
    from rankers.retriever import Index, load_encoder
    from rankers.texts import query_text
    from trainers.card import write_card
    from trainers.data import real_examples
    from trainers.reranker import RerankerConfig, train_reranker

    model, _, _ = load_encoder(Path(args.retriever), None)
    index = Index(model, misconceptions)
    config = RerankerConfig(base=args.reranker, steps=args.train_steps, scoring="listwise", window=k,
                            eval_queries=0, seed=args.seed)
    t0 = time.perf_counter()
    result = train_reranker(real_examples(train_pairs), [], misconceptions,
                            lambda rows, n, exclude: index.rank([query_text(r) for r in rows], n, exclude),
                            config, out, progress=False, log=lambda line: print(f"  {line}", flush=True))
    write_card(out, {"kind": "reranker", "scoring": "listwise", "base": result.base.record(),
                     "hyperparameters": config.record(), "losses": result.losses, "timings": result.seconds,
                     "data": {"fold": args.fold, "folds": args.folds, "rows": len(train_pairs)}},
               "Listwise reranker trained by benchmarks/rerank_quality.py on one fold's training rows")
    print(f"  trained on {len(train_pairs):,} rows of fold {args.fold}'s training split in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    from pipelines.args import all_user_errors, guard

    sys.exit(guard(main, all_user_errors()))
