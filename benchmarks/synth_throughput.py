"""Throughput of the factory per mode on the embedded engine: items and kept rows per hour, seconds per stage.

    python benchmarks/synth_throughput.py --items 12 --mode distractor --checks pick
    python benchmarks/synth_throughput.py --items 12 --mode question --checks solve,pick --model qwen2.5-coder-1.5b
    python benchmarks/synth_throughput.py --items 12 --mode distractor --executor local --executor ray --ray-workers 2 --threads 1

Each case runs ``factory.run`` on a fresh store with no request cache (every answer computed), on the first
``--items`` items of the plan (``--cluster all``, cluster order). Startup (loading data, embeddings, the
llama.cpp server; with ``--executor ray`` a local Ray and its workers) is excluded from the rates and printed
apart. Run on an idle machine: llama.cpp slows
several times over when other work shares the cores.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eedi import resolve_data_dir  # noqa: E402
from factory import MODES, SynthConfig, run  # noqa: E402
from factory.checks import check_class  # noqa: E402
from llm import BackendOptions  # noqa: E402


def measure(args: argparse.Namespace, mode: str, checks: list[str], executor: str) -> dict:
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        name = f"{mode}-{'-'.join(checks) or 'none'}-{executor}"
        store = Path(args.keep) / name if args.keep else Path(tmp) / "store"
        config = SynthConfig(data_dir=resolve_data_dir(args.data_dir), store=store, mode=mode,
                             checks=checks, limit=args.items, per_misconception=args.per_misconception,
                             shots=args.shots, generator_model=args.model, judge_model=args.judge_model or args.model,
                             teacher_model=args.model, solver_model=args.model, request_cache=False,
                             rationale=args.rationale, backend=BackendOptions(threads=args.threads), progress=False,
                             executor=executor, ray_workers=args.ray_workers, task_items=args.task_items)
        started = time.perf_counter()
        record = run(config, out=io.StringIO(), err=io.StringIO())
        wall = time.perf_counter() - started
    seconds = record["seconds"]
    kept = record["counts"]["kept"]
    usage = record["usage"]
    out_tokens = sum(u["completion_tokens"] for u in usage.values())
    prompt_tokens = sum(u["prompt_tokens"] for u in usage.values())
    return {"mode": mode, "checks": ",".join(checks) or "none", "executor": executor,
            "workers": record.get("executor", {}).get("workers", 1), "items": record["attempted"], "kept": kept,
            "items/h": record["attempted"] / seconds * 3600, "kept/h": kept / seconds * 3600,
            "s/item": seconds / record["attempted"], "startup s": wall - seconds,
            "output tok/s": out_tokens / seconds, "prompt tok/item": prompt_tokens / record["attempted"],
            "stage s/item": {n: round(u["wall_seconds"] / record["attempted"], 1) for n, u in usage.items()},
            "passed/in": {st["name"]: f"{st['passed']}/{st['in']}" for st in record["stages"]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir")
    p.add_argument("--items", type=int, default=12)
    p.add_argument("--mode", action="append", choices=list(MODES),
                   help="repeatable (default: distractor and question)")
    p.add_argument("--checks", action="append", default=None,
                   help="comma-separated checks of a case; repeatable, one case each ('none': no check)")
    p.add_argument("--model", default=None, help="embedded preset or .gguf (default the 0.5B preset)")
    p.add_argument("--judge-model", default=None)
    p.add_argument("--per-misconception", type=int, default=1)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--rationale", default="working", choices=("working", "teacher"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--keep", metavar="DIR", help="keep each case's store under DIR (to read its rows)")
    p.add_argument("--executor", action="append", choices=("local", "ray"), help="repeatable (default: local)")
    p.add_argument("--ray-workers", type=int, default=None, help="--executor ray: workers (default: the CPUs allow)")
    p.add_argument("--task-items", type=int, default=8, help="--executor ray: items per task (default 8)")
    args = p.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    cases = [[c for c in spec.split(",") if c and c != "none"] for spec in (args.checks or ["none"])]
    print(f"# {args.items} items per case, model {args.model or 'qwen2.5-coder-0.5b'}, judge "
          f"{args.judge_model or args.model or 'qwen2.5-coder-0.5b'}, shots {args.shots}")
    for mode in args.mode or ["distractor", "question"]:
        for checks in cases:
            if any(MODES[mode].lacks(check_class(c)) for c in checks):
                continue  # a check this mode's rows cannot take (solve in distractor mode, pick in pairing mode)
            for executor in args.executor or ["local"]:
                report(measure(args, mode, checks, executor))


def report(r: dict) -> None:
    print(f"{r['mode']:<10} checks {r['checks']:<16} {r['executor']} x{r['workers']}  items {r['items']:>3}  "
          f"kept {r['kept']:>3}  items/h {r['items/h']:6.0f}  kept/h {r['kept/h']:6.0f}  s/item {r['s/item']:5.1f}  "
          f"output tok/s {r['output tok/s']:4.1f}  prompt tok/item {r['prompt tok/item']:5.0f}  "
          f"startup {r['startup s']:4.0f} s", flush=True)
    print(f"           stage s/item {r['stage s/item']}  passed/in {r['passed/in']}", flush=True)

if __name__ == "__main__":
    from pipelines.args import all_user_errors, guard

    sys.exit(guard(main, all_user_errors()))
