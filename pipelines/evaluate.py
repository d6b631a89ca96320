"""python -m pipelines.evaluate: cross-validated MAP@25 on the real rows, with and without synthetic data.

Examples:
  python -m pipelines.evaluate --data-dir data/eedi --report reports/real-only
  python -m pipelines.synth --cluster all --hide-fold 0 --store eval-store      # evaluation data, fold 0
  python -m pipelines.evaluate --data-dir data/eedi --store eval-store --versions all --only-folds 0 \\
      --report reports/eval
  python -m pipelines.evaluate --data-dir data/eedi --store eval-store --pooled --control pairing,no-answers \\
      --only-folds 0,1,2 --schemes misconception --reranker none --report reports/vs-control
  python -m pipelines.synth --misconception-cards --store cards-store          # the teacher's cards, once
  python -m pipelines.evaluate --data-dir data/eedi --cards cards-store --only-folds 0 --schemes misconception \\
      --reranker none --report reports/cards                                    # each condition with and without

Folds are grouped by misconception (validation misconceptions unseen in training) and by
construct.  Conditions on the same folds: the zero-shot base retriever, the retriever trained
on real rows, trained on real + each chosen store version (or all of them, --pooled) at
each --synth-repeat; with --control pairing on real + the LLM-free control's rows, with --control
no-answers on each store's rows without the LLM's answers; each ranked with and without the
reranker and with each --unseen-boost.
A synthetic row trains a fold only if that fold's validation rows were hidden when it was made
(synth --hide-fold): not among its shots, not among its near-duplicate references.  The report
(report.md, results.json, PNG plots) goes to --report; finished conditions are reused when a
later command has their settings, and trained retrievers when it has their training settings.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from eedi import DATA_DIR_ENV, DataError, resolve_data_dir
from embeddings import EmbedderError
from rankers import ModelError
from pipelines.args import (FOLD_BY, UsageError, add_fold_args, add_listwise_args, count, positive, positive_floats,
                            repeats, run_main, weight)
from inference.ranking import DEFAULT_FUSE
from prompts import TemplateError
from store import StoreError
from trainers import TrainError

USER_ERRORS = (DataError, TrainError, ModelError, StoreError, EmbedderError, TemplateError)


def _ints(value: str) -> list[int]:
    try:
        out = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        out = []
    if not out:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {value!r}")
    return out


def _controls(value: str) -> list[str]:
    """--control: a comma-separated list of evaluation.control.CONTROLS, or none."""
    from evaluation.control import CONTROLS

    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["none"]:
        return []
    wrong = [n for n in names if n not in CONTROLS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"expected {', '.join(CONTROLS)} (comma-separated) or none, got {value!r}")
    return list(dict.fromkeys(names))


def check_folds(folds: int, only: list[int] | None) -> None:
    """--only-folds ids are in 0..K-1 (--folds K is at least 2 by its argparse type)."""
    outside = [f for f in only or () if not 0 <= f < folds]
    if outside:
        raise UsageError(f"--only-folds {outside[0]}: folds are 0..{folds - 1}")


def build_parser() -> argparse.ArgumentParser:
    from evaluation.control import CONTROLS
    from trainers.retriever import RetrieverConfig

    R = RetrieverConfig()
    p = argparse.ArgumentParser(
        prog="python -m pipelines.evaluate", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("data and report")
    io.add_argument("--data-dir", metavar="DIR",
                    help=f"folder with the competition CSVs (default ${DATA_DIR_ENV}, else ./data/eedi)")
    io.add_argument("--store", metavar="DIR", help="dataset store with synthetic versions (default: none)")
    io.add_argument("--versions", default="all", metavar="all|ID,...",
                    help="store versions, each evaluated as its own condition (default all)")
    io.add_argument("--pooled", action="store_true",
                    help="evaluate the chosen versions together, as one condition real+synthetic (e.g. one "
                         "synth --hide-fold run per fold; the leak rule still picks each fold's rows)")
    io.add_argument("--control", type=_controls, default=[], metavar="LIST",
                    help="LLM-free controls, comma-separated. " + "; ".join(f"{c.name}: {c.help}" for c in
                                                                             CONTROLS.values())
                         + "; none (default): neither")
    io.add_argument("--cards", metavar="STORE",
                    help="a store holding misconception cards (synth --misconception-cards): every condition also "
                         "runs as <condition>+cards, its retriever's documents the names with their cards, and the "
                         "report gives what the cards add (doubles the training time)")
    io.add_argument("--report", required=True, metavar="DIR", help="where report.md, results.json and plots go")
    io.add_argument("--no-progress", action="store_true", help="no progress bars")
    io.add_argument("--threads", type=positive, metavar="N", help="CPU threads for torch (default: one per core)")

    folds = p.add_argument_group("folds")
    add_fold_args(folds, fold_by_help="the grouping synth --hide-fold used, of misconception and construct: the "
                                      "--control pairing rows hide the same folds; --schemes picks the groupings "
                                      "evaluated (default misconception)")
    folds.add_argument("--schemes", default="misconception,construct", metavar="LIST",
                       help="fold groupings to evaluate, of misconception and construct (default both; "
                            "--fold-by is the one synth --hide-fold used)")
    folds.add_argument("--only-folds", type=_ints, metavar="F,...", help="evaluate these folds only (default all)")

    r = p.add_argument_group("retriever training (per fold and condition)")
    r.add_argument("--epochs", type=positive, default=R.epochs, metavar="N",
                   help=f"epochs per training (default {R.epochs}; e.g. 2 for a real-only run with as many "
                        "steps as a real+synthetic one)")
    r.add_argument("--max-steps", type=count, default=0, metavar="N",
                   help="step budget per training, over all epochs; 0: every batch of every epoch (default 0)")
    r.add_argument("--batch-size", type=positive, default=R.batch_size, metavar="N",
                   help=f"rows per batch (default {R.batch_size})")
    r.add_argument("--hard-negatives", type=count, default=R.hard_negatives, metavar="K",
                   help=f"mined hard negatives per row (default {R.hard_negatives})")
    r.add_argument("--lr", type=float, default=R.lr, help=f"learning rate (default {R.lr:g})")
    r.add_argument("--synth-per-misconception", type=positive, default=4, metavar="N",
                   help="at most N synthetic rows per misconception, best judge score first (default 4)")
    r.add_argument("--synth-repeat", type=repeats, default=[None], metavar="R,...",
                   help="a condition per version and R: every synthetic row used R times per epoch; auto (the "
                        "training default): as often as keeps synthetic uses within the real rows' count, at "
                        "most 16 (default auto; e.g. auto,1 to compare)")
    r.add_argument("--seed", type=int, default=0, help="training seed (default 0)")

    rr = p.add_argument_group("reranker and boost")
    rr.add_argument("--reranker", default="qwen2.5-coder-0.5b", metavar="MODEL|none",
                    help="the reranker's base model, zero-shot (trained rerankers saw other folds' rows), "
                         "or none (default qwen2.5-coder-0.5b)")
    rr.add_argument("--reranker-kind", choices=("pointwise", "listwise"), default="pointwise",
                    help="pointwise: one candidate per forward pass; listwise: --rerank-window lettered candidates "
                         "per pass (default pointwise)")
    add_listwise_args(rr)
    rr.add_argument("--rerank-top", type=positive, default=8, metavar="N", help="candidates reranked (default 8)")
    rr.add_argument("--rerank-fuse", type=weight, default=DEFAULT_FUSE, metavar="W",
                    help=f"the retriever's weight in the reranked order, as in pipelines.infer (default {DEFAULT_FUSE:g})")
    rr.add_argument("--rerank-pairs", type=count, default=64, metavar="N",
                    help="validation pairs per fold that are reranked, a seeded sample (0: all; default 64: "
                         "an LLM on CPU scores about 2 candidates/s)")
    rr.add_argument("--unseen-boost", type=positive_floats, default=[1.0, 2.0, 4.0], metavar="B,...",
                    help="boost factors to compare for misconceptions with no real training row in the fold "
                         "(default 1,2,4)")
    return p


def run(args: argparse.Namespace) -> int:
    from eedi import load_eedi
    from embeddings import ClusterParams, Embedder, cluster_misconceptions
    from evaluation.crossval import EvalConfig, run_evaluation
    from evaluation.report import write_report
    from llm import cache_dir
    from trainers.data import MixRule, read_synthetic
    from trainers.retriever import RetrieverConfig

    started = time.perf_counter()
    check_folds(args.folds, args.only_folds)
    data_dir = resolve_data_dir(args.data_dir)
    data = load_eedi(data_dir)
    schemes = []
    for name in (s.strip() for s in args.schemes.split(",") if s.strip()):
        if name not in FOLD_BY:
            raise DataError(f"--schemes: {name!r} is not one of {', '.join(FOLD_BY)}")
        schemes.append(FOLD_BY[name])
    synthetic: dict[str, list[dict]] = {}
    if args.store:
        selection = read_synthetic(Path(args.store), args.versions)
        if args.pooled:
            synthetic = {"synthetic": selection.rows}
        else:
            synthetic = {v: [] for v in selection.versions}
            for row in selection.rows:
                synthetic.setdefault(row["Version"], []).append(row)
    controls: dict[str, str | None] = {}  # each control condition's version: whose baseline it is (None: all)
    if args.control:
        from evaluation.control import ControlError, Inputs, add_controls

        try:
            arms = add_controls(args.control, synthetic, Inputs(
                data_dir, Path(args.report) / "control-store", FOLD_BY[args.fold_by], args.folds, args.fold_seed,
                args.only_folds, log=lambda m: print(m, flush=True)))
        except ControlError as e:
            raise DataError(str(e)) from None
        synthetic.update({name: arm.rows for name, arm in arms.items()})
        controls = {name: arm.of for name, arm in arms.items()}
    cards = None
    if args.cards:
        from store.cards import read_cards

        cards, source = read_cards(Path(args.cards))
        print(f"cards: {len(cards):,} misconception cards from {args.cards} ("
              + ", ".join(f"{n} by {s}" for s, n in source["sources"].items()) + ")"
              + (f"; {len(set(data.misconceptions) - set(cards)):,} misconceptions have none (names alone)"
                 if set(data.misconceptions) - set(cards) else ""), flush=True)
    config = EvalConfig(
        schemes=schemes, folds=args.folds, fold_seed=args.fold_seed, only_folds=args.only_folds,
        retriever=RetrieverConfig(epochs=args.epochs, max_steps=args.max_steps or None, batch_size=args.batch_size,
                                  hard_negatives=args.hard_negatives, lr=args.lr, seed=args.seed),
        mix=MixRule(args.synth_per_misconception, math.inf, args.seed), repeats=args.synth_repeat,
        reranker=None if args.reranker == "none" else args.reranker, reranker_kind=args.reranker_kind,
        rerank_window=args.rerank_window, rerank_orders=args.rerank_orders, top_n=args.rerank_top, rerank_fuse=args.rerank_fuse,
        rerank_pairs=args.rerank_pairs or None, boosts=args.unseen_boost)
    report = Path(args.report)
    print(f"evaluate: {len(data.train_pairs):,} real pairs, {args.folds} folds ({', '.join(schemes)}, seed "
          f"{args.fold_seed}), {len(selection.versions) if args.store else 0} synthetic version(s)"
          f"{' pooled' if args.pooled else ''}; report in {report}", flush=True)
    results = run_evaluation(data.train_pairs, data.misconceptions, synthetic, config, report,
                             progress=not args.no_progress, log=lambda m: print(m, flush=True), cache=cache_dir(),
                             cards=cards)

    embedder = Embedder(cache=cache_dir())
    ids = sorted(data.misconceptions)
    clustering = cluster_misconceptions(ids, embedder.encode_cached([data.misconceptions[m] for m in ids],
                                                                    "misconceptions"), ClusterParams())
    cluster_of_mid = {m: c for c, members in clustering.members.items() for m in members}
    cluster_of = {p.key: cluster_of_mid[p.MisconceptionId] for p in data.train_pairs}
    epochs = "one epoch" if args.epochs == 1 else f"{args.epochs} epochs"
    steps = epochs if not args.max_steps else f"{args.max_steps} steps"
    reranker = (f"Reranker: {config.reranker} zero-shot ({config.reranker_kind}"
                + (f", windows of {args.rerank_window}, orders {args.rerank_orders}" if args.reranker_kind == "listwise" else "")
                + f") on the top {args.rerank_top}, for "
                f"{args.rerank_pairs or 'all'} sampled pairs per fold." if config.reranker else "Reranker: none.")
    header = [f"Data: {data_dir} ({len(data.train_pairs):,} labelled pairs). Folds: {args.folds}, seed "
              f"{args.fold_seed}" + (f", evaluated folds {args.only_folds}" if args.only_folds else "") + ".",
              f"Command: `python -m pipelines.evaluate {' '.join(sys.argv[1:])}`",
              f"Retriever: embedded all-MiniLM-L6-v2, trained {steps} per fold and condition (batch "
              f"{args.batch_size}, {args.hard_negatives} hard negatives, lr {args.lr:g}). {reranker} Synthetic rows: "
              f"at most {args.synth_per_misconception} per misconception, only those the leak rule admits"
              + "; each used as often as keeps synthetic uses within the real rows' count (at most 16), or R "
                "times in conditions marked xR."]
    path = write_report(results, report, config.record(), header, cluster_of,
                        comparisons=config.comparisons(list(synthetic), controls))
    print(f"wrote {path} ({time.perf_counter() - started:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(run, args, USER_ERRORS, "interrupted: finished folds are kept; run the same command again to continue")


if __name__ == "__main__":
    sys.exit(main())
