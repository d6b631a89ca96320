"""Pipeline overhead and prefix-aware ordering, on the embedded model behind llama.cpp's server (127.0.0.1).

(a) Runs the synth pipeline on --items items of one cluster against a fresh
    server, then sends the exact requests it made (read back from its request
    cache, in order) straight to another fresh server with the plain openai
    client.  Completion tokens/s of both; their ratio is the pipeline's overhead.
(b) Sends the same requests with max_tokens=1 (prompt evaluation only) to fresh
    servers in the pipeline's order (prefix-aware: cluster by cluster, stage
    by stage within a batch) and in a shuffled order; sums the prompt tokens
    each server actually evaluated (from its log).

    python benchmarks/backend_overhead.py [--cluster 6] [--items 4] [--data-dir ../shared/data/eedi]

Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import openai

from eedi import resolve_data_dir
from llm import DEFAULT_PRESET, BackendOptions, RequestCache, resolve_model
from llm.openai_backend import response_format
from llm.server import LlamaServer
from factory import SynthConfig, run


def send(server: LlamaServer, requests: list[dict], max_tokens: int | None = None) -> tuple[int, float]:
    """Send canonical requests one by one; returns (completion tokens, wall seconds)."""
    client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=900)
    tokens, start = 0, time.perf_counter()
    for r in requests:
        kwargs = {"response_format": response_format(r["json_schema"], "llama.cpp")} if r["json_schema"] else {}
        out = client.chat.completions.create(
            model=server.alias, messages=[{"role": role, "content": c} for role, c in r["messages"]],
            max_tokens=max_tokens or r["sampling"]["max_tokens"], temperature=r["sampling"]["temperature"],
            top_p=r["sampling"]["top_p"], seed=r["sampling"]["seed"], **kwargs)
        tokens += out.usage.completion_tokens
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", type=int, default=6)
    parser.add_argument("--items", type=int, default=4)
    parser.add_argument("--data-dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = resolve_model(DEFAULT_PRESET)
    work = Path(tempfile.mkdtemp(prefix="mf-bench-"))

    def server(name: str) -> LlamaServer:
        return LlamaServer(model.path, alias="bench", log_dir=work / name)

    with server("pipeline") as s:
        config = SynthConfig(data_dir=resolve_data_dir(args.data_dir), store=work / "store", clusters=[args.cluster],
                             limit=args.items, seed=args.seed, progress=False, mode="question", checks=["judge"],
                             backend=BackendOptions(engine="openai", base_url=s.base_url, structured="llama.cpp",
                                                    concurrency=1))
        record = run(config, out=sys.stderr)
    usage = record["usage"]
    pipeline_tokens = sum(u["completion_tokens"] for u in usage.values())
    requests = RequestCache(config.request_cache_path()).requests()

    with server("raw") as s:
        raw_tokens, raw_seconds = send(s, requests)

    rows = []
    shuffled = requests[:]
    random.Random(0).shuffle(shuffled)
    for label, order in (("prefix-aware (pipeline order)", requests), ("shuffled", shuffled)):
        with server(f"prompt-{len(rows)}") as s:
            _, seconds = send(s, order, max_tokens=1)
            rows.append((label, sum(s.prompt_tokens_evaluated()), seconds))

    pipeline_rate, raw_rate = pipeline_tokens / record["seconds"], raw_tokens / raw_seconds
    print(f"\n(a) pipeline against the raw server: {record['attempted']} items of cluster {args.cluster}, "
          f"{len(requests)} requests")
    print(f"{'':<24}{'completion tok':>15}{'seconds':>9}{'tok/s':>8}")
    print(f"{'synth pipeline':<24}{pipeline_tokens:>15}{record['seconds']:>9.1f}{pipeline_rate:>8.2f}")
    print(f"{'raw server, same reqs':<24}{raw_tokens:>15}{raw_seconds:>9.1f}{raw_rate:>8.2f}")
    print(f"pipeline / raw throughput: {pipeline_rate / raw_rate:.2f}")
    sent = sum(u["prompt_tokens"] for u in usage.values())
    print(f"\n(b) prompt tokens evaluated for the same {len(requests)} requests ({sent} prompt tokens sent), "
          "prompt evaluation only")
    print(f"{'order':<32}{'evaluated':>10}{'of sent':>9}{'seconds':>9}")
    for label, evaluated, seconds in rows:
        print(f"{label:<32}{evaluated:>10}{evaluated / sent:>9.0%}{seconds:>9.1f}")


if __name__ == "__main__":
    from pipelines.args import all_user_errors, guard

    sys.exit(guard(main, all_user_errors()))
