"""python -m pipelines.merge: merge the LoRA adapters of several reranker runs on one base into one adapter.

Examples:
  python -m pipelines.merge --out models/merged/reranker models/fold0/reranker models/fold1/reranker
  python -m pipelines.merge --out merged --weights 2,1 models/a/reranker models/b/reranker

The merged adapter's update is the weighted mean of the parents' updates (exactly: their A
matrices stacked, their scaled B matrices side by side, rank = the sum of ranks); its card
names its parents.  pipelines.infer loads it like any trained reranker (--reranker DIR).
The parents must share the base model and the scoring (pointwise or listwise).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.args import positive_floats, run_main
from rankers import ModelError
from trainers import TrainError

USER_ERRORS = (TrainError, ModelError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.merge", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("adapters", nargs="+", metavar="DIR", help="reranker folders written by pipelines.train")
    p.add_argument("--out", required=True, metavar="DIR", help="the merged adapter's folder (must not exist)")
    p.add_argument("--weights", type=positive_floats, metavar="W,...", help="one weight per adapter (default: equal)")
    return p


def run(args: argparse.Namespace) -> int:
    from trainers.merge import merge_adapters

    card = merge_adapters([Path(a) for a in args.adapters], Path(args.out), args.weights)
    parents = ", ".join(f"{m['path']} (x{m['weight']:g})" for m in card["merged_from"])
    print(f"merged {len(card['merged_from'])} {card['scoring']} adapters on {card['base']['name']} into {args.out} "
          f"(LoRA rank {card['lora_r']}): {parents}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(run, args, USER_ERRORS, "interrupted: the merged adapter may be incomplete; delete --out")


if __name__ == "__main__":
    sys.exit(main())
