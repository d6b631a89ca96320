"""Training speed on this machine: retriever examples/s and peak memory, reranker seconds per step.

    python benchmarks/train_throughput.py [--data-dir ../shared/data/eedi] [--store synth-store --versions latest]
                                          [--steps 20] [--reranker-steps 5] [--skip-reranker] [--threads N]

retriever: the default retriever (embedded all-MiniLM-L6-v2, batch 32, 2 hard negatives,
128 tokens) on every real training row plus one synthetic store version (the latest with
kept rows), for --steps steps; hard-negative mining is timed separately.
reranker: the CPU default (Qwen2.5-Coder-0.5B from its GGUF, LoRA on the last 8 layers,
1 + 3 prompts of at most 192 tokens per step) for --reranker-steps steps.
Each case runs in its own process so that its peak resident memory is its own.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _examples(args):
    from eedi import load_eedi, resolve_data_dir
    from eedi.splits import grouped_holdout
    from trainers.data import (
        MixRule,
        mix,
        read_synthetic,
        real_examples,
        synthetic_examples,
    )

    data = load_eedi(resolve_data_dir(args.data_dir))
    train_pairs, _, held = grouped_holdout(data.train_pairs, 0.15, 0)
    synthetic, versions = [], []
    if args.store:
        selection = read_synthetic(Path(args.store), args.versions)
        synthetic, versions = synthetic_examples(selection.rows, data.misconceptions), selection.versions
    examples, stats = mix(real_examples(train_pairs), synthetic, MixRule(), held)
    return data, examples, stats, versions


def case_retriever(args) -> dict:
    import tempfile

    from trainers.retriever import RetrieverConfig, train_retriever

    data, examples, stats, versions = _examples(args)
    config = RetrieverConfig(max_steps=args.steps)
    with tempfile.TemporaryDirectory() as out:
        result = train_retriever(examples, [], data.misconceptions, config, Path(out) / "r", progress=False,
                                 log=lambda _: None)
    texts = len(examples) + len(data.misconceptions)
    return {"rows": len(examples), "synthetic": stats["synthetic_used"], "versions": versions,
            "steps": result.steps, "examples": result.examples, "train_s": result.train_seconds,
            "examples_per_s": result.examples_per_second, "mine_s": result.mine_seconds,
            "mine_texts_per_s": round(texts / result.mine_seconds, 1) if result.mine_seconds else 0}


def case_reranker(args) -> dict:
    import tempfile

    from rankers.retriever import Index, load_encoder
    from rankers.texts import query_text
    from trainers.reranker import RerankerConfig, train_reranker

    data, examples, _, _ = _examples(args)
    model, _, _ = load_encoder(None, 128)
    index = Index(model, data.misconceptions)

    def rank(rows, k, exclude):
        return index.rank([query_text(r) for r in rows], k, exclude)

    config = RerankerConfig(steps=args.reranker_steps, eval_queries=0)
    with tempfile.TemporaryDirectory() as out:
        result = train_reranker(examples, [], data.misconceptions, rank, config, Path(out) / "rr", progress=False,
                                log=lambda _: None)
    return {"base": result.base.name, "precision": result.precision, "steps": result.steps,
            "load_s": result.seconds["load"], "train_s": result.seconds["train"],
            "s_per_step": result.seconds["per_step"], "prompts_per_step": 1 + config.negatives,
            "max_tokens": config.max_tokens, "lora_layers": config.lora_layers}


def child(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out = case_retriever(args) if args.case == "retriever" else case_reranker(args)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(out), flush=True)


def run_case(name: str, argv: list[str]) -> dict:
    cp = subprocess.run([sys.executable, __file__, "--case", name, *argv], capture_output=True, text=True, cwd=ROOT,
                        check=False)
    for line in cp.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{name} case failed:\n{cp.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--store", help="dataset store with a synthetic version (default: real rows only)")
    parser.add_argument("--versions", default="latest")
    parser.add_argument("--steps", type=int, default=20, help="retriever steps timed (default 20)")
    parser.add_argument("--reranker-steps", type=int, default=5, help="reranker steps timed (default 5)")
    parser.add_argument("--skip-reranker", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: one per core)")
    parser.add_argument("--case", choices=["retriever", "reranker"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args)
    argv = [a for a in sys.argv[1:] if a != "--skip-reranker"]


    print(f"# {os.cpu_count()} CPUs, torch threads {args.threads or 'default'}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    r = run_case("retriever", argv)
    print(f"retriever (MiniLM): {r['rows']:,} rows ({r['synthetic']} synthetic from {', '.join(r['versions']) or '-'})")
    print(f"{'case':<34}{'steps':>6}{'seconds':>9}{'rate':>22}{'peak RSS':>11}")
    print(f"{'retriever: mine hard negatives':<34}{'':>6}{r['mine_s']:>9.1f}{str(r['mine_texts_per_s']) + ' texts/s':>22}"
          f"{'':>11}")
    print(f"{'retriever: train (batch 32)':<34}{r['steps']:>6}{r['train_s']:>9.1f}"
          f"{str(r['examples_per_s']) + ' examples/s':>22}{str(r['peak_rss_mb']) + ' MB':>11}")
    if not args.skip_reranker:
        rr = run_case("reranker", argv)
        print(f"{'reranker: load ' + rr['base'][:18]:<34}{'':>6}{rr['load_s']:>9.1f}{'':>22}{'':>11}")
        print(f"{'reranker: train (' + str(rr['prompts_per_step']) + ' prompts/step)':<34}{rr['steps']:>6}"
              f"{rr['train_s']:>9.1f}{str(rr['s_per_step']) + ' s/step':>22}{str(rr['peak_rss_mb']) + ' MB':>11}")
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
