"""What misconception cards add to the retriever, measured on the misconceptions that have a card.

``pipelines.evaluate --cards`` needs a card for every misconception (the retriever ranks all of them); a card
run of the 0.5B on 2 cores makes 636-850 cards an hour, so a partial card set is what a laptop has first.
This benchmark measures a partial set honestly: the universe is cut to the misconceptions that have a kept
card (names and cards alike), the real rows to those labelled with one of them, and the same grouped
cross-validation as ``pipelines.evaluate`` (``evaluation.crossval.run_evaluation``) runs each condition with and
without the cards: zero-shot MiniLM, and MiniLM trained on the fold's real rows.  Every validation pair's
misconception is unseen in its fold's training rows.  MAP@25 here is over a smaller universe than the
competition's 2,587, so compare the two columns, not the level with other reports.

    python benchmarks/cards_subset.py --data-dir ../shared/data/eedi --cards CARD_STORE --folds 10 \\
        --report /tmp/cards-subset
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eedi import load_eedi, resolve_data_dir  # noqa: E402
from evaluation.crossval import CARDS, EvalConfig, run_evaluation, uplift  # noqa: E402
from evaluation.report import write_report  # noqa: E402
from store.cards import read_cards  # noqa: E402
from trainers.retriever import RetrieverConfig  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir")
    p.add_argument("--cards", required=True, help="a store with misconception cards")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--only-folds", help="e.g. 0,1,2 (default all)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--report", required=True)
    args = p.parse_args()

    started = time.perf_counter()
    data = load_eedi(resolve_data_dir(args.data_dir))
    cards, source = read_cards(Path(args.cards))
    universe = {m: data.misconceptions[m] for m in cards if m in data.misconceptions}
    pairs = [p for p in data.train_pairs if p.MisconceptionId in universe]
    print(f"universe: {len(universe)} misconceptions with a card ({source['sources']}); "
          f"{len(pairs)} real pairs labelled with one of them, over "
          f"{len({p.MisconceptionId for p in pairs})} misconceptions", flush=True)
    only = [int(f) for f in args.only_folds.split(",")] if args.only_folds else None
    config = EvalConfig(schemes=["MisconceptionId"], folds=args.folds, only_folds=only,
                        retriever=RetrieverConfig(epochs=args.epochs, max_steps=args.max_steps or None),
                        reranker=None, boosts=[1.0])
    report = Path(args.report)
    results = run_evaluation(pairs, universe, {}, config, report, progress=False, cards=cards,
                             log=lambda m: print(m, flush=True))
    write_report(results, report, config.record(), [f"Cards subset benchmark: {len(universe)} misconceptions, "
                                                    f"{len(pairs)} pairs; command: {' '.join(sys.argv)}"], {})
    k = config.k
    print(f"\nunseen MAP@{k}, {len({r['fold'] for r in results})} folds ({time.perf_counter() - started:.0f} s):")
    for base in ("zero-shot", "real"):
        values = {c: [r["variants"]["retriever|1"]["metrics"]["unseen"][f"map@{k}"] for r in results
                      if r["condition"] == c] for c in (base, base + CARDS)}
        deltas = uplift(results, base + CARDS, base)["MisconceptionId"]
        print(f"  {base:<10} names {statistics.fmean(values[base]):.4f}   with cards "
              f"{statistics.fmean(values[base + CARDS]):.4f}   difference per fold "
              f"{', '.join(f'{d:+.3f}' for d in deltas)}; mean {statistics.fmean(deltas):+.4f}"
              + (f" ± {statistics.stdev(deltas):.4f}" if len(deltas) > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
