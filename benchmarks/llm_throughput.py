"""Throughput of an embedded LLM on this machine: prompt evaluation, free generation, and
JSON-schema-constrained generation of a real generator request (with its prefix cached).

    python benchmarks/llm_throughput.py [--model qwen2.5-coder-0.5b] [--data-dir ../shared/data/eedi]

Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from eedi import resolve_data_dir
from generators import QuestionGenerator
from llm import ChatRequest, open_backend
from pipelines.config import SynthConfig
from pipelines.factory import plan, prepare


def timed(backend, request: ChatRequest):
    start = time.perf_counter()
    response = backend.chat(request)
    return response, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--data-dir")
    parser.add_argument("--cluster", type=int, default=6)
    args = parser.parse_args()

    config = SynthConfig(data_dir=resolve_data_dir(args.data_dir), clusters=[args.cluster], per_misconception=3)
    targets = plan(prepare(config), config)
    generator = QuestionGenerator()
    backend = open_backend(args.model)
    rows = []
    try:
        prose = ChatRequest(messages=(("user", "Describe how to add two fractions. " * 60),), max_tokens=1)
        r, s = timed(backend, prose)
        rows.append(("prompt evaluation (cold)", r.prompt_tokens, 0, s, f"{r.prompt_tokens / s:.0f} prompt tok/s"))

        free = ChatRequest(messages=(("user", "Count from 1 to 100, separated by commas."),),
                           max_tokens=200, temperature=0.0)
        r, s = timed(backend, free)
        rows.append(("free generation", r.prompt_tokens, r.completion_tokens, s,
                     f"{r.completion_tokens / s:.1f} tok/s"))

        first = generator.prompt(targets[0])
        r, s = timed(backend, first)
        rows.append(("generator request, cold prefix", r.prompt_tokens, r.completion_tokens, s,
                     f"{r.completion_tokens / s:.1f} tok/s"))
        for label, request in (("generator request, cached prefix, schema", generator.prompt(targets[1])),
                               ("generator request, cached prefix, no schema",
                                dataclasses.replace(generator.prompt(targets[2]), json_schema=None))):
            r, s = timed(backend, request)
            rows.append((label, r.prompt_tokens, r.completion_tokens, s, f"{r.completion_tokens / s:.1f} tok/s"))
    finally:
        backend.close()

    print(f"model {backend.identity}")
    print(f"{'case':<46}{'prompt tok':>11}{'output tok':>11}{'seconds':>9}  rate")
    for label, p, c, s, rate in rows:
        print(f"{label:<46}{p:>11}{c:>11}{s:>9.1f}  {rate}")


if __name__ == "__main__":
    main()
