"""python -m pipelines.synth: make judged, explained synthetic training rows for misconceptions that lack real ones.

Examples:
  python -m pipelines.synth --list-clusters --data-dir data/eedi
  python -m pipelines.synth --cluster all --data-dir data/eedi --store synth-store
  python -m pipelines.synth --cluster 12 --cluster 40 --per-misconception 2 --limit 20

Re-running the same command continues a killed run: items already in the
store (kept or rejected) are skipped.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from eedi import DATA_DIR_ENV, DataError, resolve_data_dir
from embeddings import ClusterParams, EmbedderError
from judges import NEAR_DUPLICATE_THRESHOLD
from llm import DEFAULT_PRESET, PRESETS, BackendError
from pipelines.config import DEFAULT_MIN_SCORE, DEFAULT_SHOTS, SynthConfig
from prompts import TemplateError
from store import StoreError

USER_ERRORS = (DataError, BackendError, StoreError, EmbedderError, TemplateError)


def _cluster_arg(value: str) -> str:
    if value != "all" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a cluster id or 'all', got {value!r}")
    return value


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    models = ", ".join(PRESETS)
    p = argparse.ArgumentParser(
        prog="python -m pipelines.synth", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to make")
    what.add_argument("--cluster", action="append", type=_cluster_arg, metavar="ID|all",
                      help="a cluster id (repeatable), or 'all' for every cluster with targets")
    what.add_argument("--list-clusters", action="store_true",
                      help="print each cluster's id, size, real rows, targets and a few names, then exit")
    what.add_argument("--per-misconception", type=_positive, default=1, metavar="N",
                      help="items to make per target misconception (default 1)")
    what.add_argument("--limit", type=_positive, metavar="N", help="make at most N items in this run")
    what.add_argument("--min-real-rows", type=_positive, default=1, metavar="K",
                      help="targets are misconceptions with fewer than K real training rows "
                           "(default 1: those with none)")
    what.add_argument("--seed", type=int, default=0, help="seed for sampling; a new seed makes new items (default 0)")

    io = p.add_argument_group("input and output")
    io.add_argument("--data-dir", metavar="DIR",
                    help=f"folder with the competition CSVs (default ${DATA_DIR_ENV}, else ./data/eedi)")
    io.add_argument("--store", default="synth-store", metavar="DIR",
                    help="dataset store folder, created if missing; each run adds a version (default ./synth-store)")
    io.add_argument("--no-progress", action="store_true", help="no progress bar")

    llm = p.add_argument_group("models", f"a model is a preset ({models}) or a path to a .gguf file")
    llm.add_argument("--generator-model", default=DEFAULT_PRESET, metavar="MODEL",
                     help=f"writes the questions (default {DEFAULT_PRESET})")
    llm.add_argument("--judge-model", default=DEFAULT_PRESET, metavar="MODEL",
                     help=f"scores each item 0-10 (default {DEFAULT_PRESET})")
    llm.add_argument("--teacher-model", default=DEFAULT_PRESET, metavar="MODEL",
                     help=f"writes the rationale of kept items (default {DEFAULT_PRESET})")
    llm.add_argument("--n-ctx", type=_positive, default=4096, metavar="N", help="context length in tokens (default 4096)")

    q = p.add_argument_group("generation and quality")
    q.add_argument("--shots", type=int, default=DEFAULT_SHOTS, metavar="N",
                   help=f"real examples in the many-shot prompt (default {DEFAULT_SHOTS})")
    q.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE, metavar="S",
                   help=f"judge score (0-10) an item needs to be kept (default {DEFAULT_MIN_SCORE:g})")
    q.add_argument("--max-attempts", type=_positive, default=3, metavar="N",
                   help="LLM answers tried per step when the output is invalid or breaks a rule "
                        "(a copy, options not distinct) (default 3)")
    q.add_argument("--near-duplicate", type=float, default=None, metavar="COS",
                   help="reject questions at or above this cosine similarity to a real or earlier one "
                        f"(default {NEAR_DUPLICATE_THRESHOLD})")

    c = p.add_argument_group("clustering (HDBSCAN on misconception-name embeddings)")
    defaults = ClusterParams()
    c.add_argument("--min-cluster-size", type=_positive, default=defaults.min_cluster_size, metavar="N",
                   help=f"HDBSCAN min_cluster_size (default {defaults.min_cluster_size})")
    c.add_argument("--attach-threshold", type=float, default=defaults.attach_threshold, metavar="COS",
                   help="a noise point joins its nearest cluster at this cosine similarity or more, else it "
                        f"is a singleton (default {defaults.attach_threshold})")
    return p


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    clusters = None
    if args.cluster and "all" not in args.cluster:
        clusters = [int(c) for c in args.cluster]
    cfg = SynthConfig(
        data_dir=resolve_data_dir(args.data_dir), store=Path(args.store), clusters=clusters,
        per_misconception=args.per_misconception, limit=args.limit, seed=args.seed,
        generator_model=args.generator_model, judge_model=args.judge_model, teacher_model=args.teacher_model,
        shots=args.shots, min_score=args.min_score, min_real_rows=args.min_real_rows,
        max_attempts=args.max_attempts,
        cluster=ClusterParams(min_cluster_size=args.min_cluster_size, attach_threshold=args.attach_threshold),
        n_ctx=args.n_ctx, progress=not args.no_progress)
    if args.near_duplicate is not None:
        cfg.near_duplicate_threshold = args.near_duplicate
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.list_clusters and not args.cluster:
        parser.error("choose what to make: --cluster ID (repeatable) or --cluster all; or --list-clusters")
    if args.shots < 0:
        parser.error("--shots must be 0 or more")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from pipelines import factory  # heavy imports after argument checks, so --help is fast

    config = config_from_args(args)
    try:
        if args.list_clusters:
            factory.list_clusters(factory.prepare(config), config.min_real_rows)
            return 0
        record = factory.run(config)
        return 0 if record["status"] in ("complete", "nothing to do") else 1
    except (*USER_ERRORS, factory.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to continue where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
