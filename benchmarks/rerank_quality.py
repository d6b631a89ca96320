"""MAP@25 of rerankers on one evaluation fold: the retriever alone, + pointwise, + listwise (both orders and
forward), and an ensemble of two retrievers, on the same sampled validation pairs.

    python benchmarks/rerank_quality.py --retriever REPORT/models/misconception-f0/real --fold 0 --folds 10 \\
        --pairs 40 [--second-retriever embedded] [--reranker qwen2.5-coder-0.5b]

The fold is the misconception scheme's (every validation misconception unseen in the fold's training
rows), as in pipelines.evaluate; use a retriever trained on that fold's rows (pipelines.evaluate writes
them under REPORT/models/).  Rerankers are zero-shot: a trained one saw other folds' rows.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eedi import load_eedi, resolve_data_dir  # noqa: E402
from eedi.metrics import ranking_metrics  # noqa: E402
from eedi.splits import FoldSpec  # noqa: E402
from inference import Ensemble, Reranker, Retriever, rank_rows  # noqa: E402
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
    args = p.parse_args()
    data = load_eedi(resolve_data_dir(args.data_dir))
    _, val = FoldSpec("MisconceptionId", args.folds, 0, args.fold).split(data.train_pairs)
    rows = random.Random(args.seed).sample(val, min(args.pairs, len(val)))
    truths = [r.MisconceptionId for r in rows]
    folder = lambda spec: None if spec == "embedded" else Path(spec)  # noqa: E731
    first = Retriever(folder(args.retriever), data.misconceptions, cache=cache_dir())
    second = Retriever(folder(args.second_retriever), data.misconceptions, cache=cache_dir())
    names = data.misconceptions

    def score(label, retriever, reranker=None):
        t0 = time.perf_counter()
        ranked = list(rank_rows(rows, retriever, names, k=25, reranker=reranker, top_n=args.rerank_top))
        m = ranking_metrics(ranked, truths)
        print(f"{label:<44} MAP@25 {m['map@25']:.4f}  recall@25 {m['recall@25']:.3f}  "
              f"{len(rows) / (time.perf_counter() - t0):6.2f} pairs/s", flush=True)

    print(f"# fold {args.fold} of {args.folds} (misconception scheme): {len(rows)} of {len(val)} validation pairs; "
          f"retriever {args.retriever}; top {args.rerank_top} reranked by {args.reranker} zero-shot")
    score("retriever alone", first)
    score(f"ensemble with {args.second_retriever} (rank)", Ensemble([first, second], "rank"))
    score(f"ensemble with {args.second_retriever} (score)", Ensemble([first, second], "score"))
    k = args.rerank_top
    score("+ pointwise", first, Reranker(args.reranker, kind="pointwise"))
    listwise = Reranker(args.reranker, kind="listwise", windows=Windows(k, reverse=True))
    score("+ listwise, both orders", first, listwise)
    listwise.scorer.windows = Windows(k, reverse=False)
    score("+ listwise, forward only", first, listwise)


if __name__ == "__main__":
    main()
