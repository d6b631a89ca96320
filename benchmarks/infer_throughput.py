"""Inference throughput (pairs/s) and peak memory: retrieval alone, and retrieval + reranker, on this machine.

Ranks --pairs wrong answers (real pairs of train.csv, labels unused) with the embedded
all-MiniLM-L6-v2 (or --retriever) over all misconceptions, then --rerank-pairs of them with
the reranker on the top --rerank-top.  Each measurement runs in a fresh process so its peak
resident memory (ru_maxrss) is its own.

    python benchmarks/infer_throughput.py [--data-dir ../shared/data/eedi] [--pairs 3000] [--rerank-pairs 24]

Rerankers measured on the same pairs and top K: pointwise (one forward pass per candidate), listwise
with the reversed order averaged in (two passes per pair at K <= window) and listwise forward only.

Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(data_dir: str, pairs: int, retriever: str | None, reranker: str | None, top: int, batch: int,
            kind: str = "pointwise", reverse: bool = True) -> dict:
    sys.path.insert(0, str(REPO))
    from eedi import load_eedi, resolve_data_dir
    from inference import Reranker, Retriever, rank_rows
    from llm import cache_dir
    from rankers.listwise import Windows

    data = load_eedi(resolve_data_dir(data_dir))
    rows = (data.train_pairs * (pairs // len(data.train_pairs) + 1))[:pairs]
    t0 = time.perf_counter()
    r = Retriever(retriever, data.misconceptions, cache=cache_dir())
    rr = Reranker(reranker, kind=kind, windows=Windows(max(2, min(top, 26)), reverse=reverse)) if reranker else None
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(1 for _ in rank_rows(rows, r, data.misconceptions, k=25, reranker=rr, top_n=top, batch_size=batch))
    seconds = time.perf_counter() - t0
    return {"pairs": n, "load_s": round(load, 1), "rank_s": round(seconds, 1), "pairs_per_s": round(n / seconds, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "names_cached": r.cached}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir")
    p.add_argument("--pairs", type=int, default=3000, help="pairs for retrieval alone (default 3000: 1,000 questions)")
    p.add_argument("--rerank-pairs", type=int, default=24, help="pairs for retrieval + reranker (default 24)")
    p.add_argument("--rerank-top", type=int, default=8)
    p.add_argument("--retriever")
    p.add_argument("--reranker", default="qwen2.5-coder-0.5b")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--runs", default="retrieval,pointwise,listwise,listwise-forward",
                   help="which to measure, comma-separated (default all four)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(args.data_dir, **spec)))
        return
    k = args.rerank_top
    runs = {"retrieval": ("retrieval (names cached)", {"pairs": args.pairs, "reranker": None}),
            "pointwise": (f"+ pointwise top {k}", {"pairs": args.rerank_pairs, "reranker": args.reranker}),
            "listwise": (f"+ listwise top {k}, both orders", {"pairs": args.rerank_pairs, "reranker": args.reranker,
                                                              "kind": "listwise"}),
            "listwise-forward": (f"+ listwise top {k}, forward", {"pairs": args.rerank_pairs,
                                                                  "reranker": args.reranker, "kind": "listwise",
                                                                  "reverse": False})}
    chosen = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := [r for r in chosen if r not in runs]:
        p.error(f"--runs: unknown {', '.join(unknown)} (choose from {', '.join(runs)})")
    runs = [runs[r] for r in chosen]
    print(f"torch threads: {os.cpu_count()} cores on this machine")
    print(f"{'':<34}{'pairs':>7}{'load s':>8}{'rank s':>8}{'pairs/s':>9}{'peak RSS MB':>13}")
    for label, spec in runs:
        spec = {**spec, "retriever": args.retriever, "top": args.rerank_top, "batch": args.batch_size}
        cmd = [sys.executable, __file__, "--child", json.dumps(spec)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        # a first run fills the misconception-embedding cache, so the timed one measures a warm start
        if spec["reranker"] is None:
            subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label:<34}{m['pairs']:>7}{m['load_s']:>8}{m['rank_s']:>8}{m['pairs_per_s']:>9}{m['peak_rss_mb']:>13}")


if __name__ == "__main__":
    main()
