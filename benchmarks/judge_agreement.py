"""Can each check tell the right item from a wrong one?  Real labelled rows are the ground truth.

Each built-in check it knows how to score (``SCORED``) is given --pairs real labelled (question, wrong answer) rows of
train.csv, with the same stage code and prompts the factory uses:

- misconception checks (pick, round-trip, judge): each row three times, claiming its labelled
  misconception (a good check passes it), the misconception whose name is nearest to it by
  embedding (hard), and a random one (easy: a good check fails it);
- the solver (solve): each row's question with its real correct answer (a good solver agrees) and
  with the targeted wrong answer claimed as correct (a good solver disagrees); one solver call per row.

Per check and model it prints the mean score (pick: the claimed misconception's probability;
round-trip: minus its rank; judge: the 0-10 score; solve: 1 when it agrees), the share each kind
passes, and the ROC AUC of labelled against each kind of wrong one, plus wall time. Nothing is asserted.

    python benchmarks/judge_agreement.py --data-dir ../shared/data/eedi --pairs 30 \\
        --models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b --checks pick,solve,round-trip,judge
    python benchmarks/judge_agreement.py --base-url http://127.0.0.1:8000/v1 --models MODEL   # a served judge
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eedi import load_eedi, resolve_data_dir  # noqa: E402
from embeddings import Embedder  # noqa: E402
from factory import CHECKS, Context, Item  # noqa: E402
from generators import Target  # noqa: E402
from judges import NearDuplicateIndex, PickMisconception, RoundTrip, RubricJudge, Solver  # noqa: E402
from llm import BackendOptions, BackendPool, Usage, cache_dir  # noqa: E402

KINDS = ("labelled", "nearest", "random")
SCORED = ("solve", "pick", "round-trip", "judge")  # the checks this benchmark scores (a new one: a branch in scores_of)


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a labelled item outscores a wrong one), ties counting half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def row_of(pair, mid: int, names: dict[int, str], correct: str | None = None) -> dict:
    return {"QuestionId": pair.key, "SubjectName": pair.SubjectName, "ConstructName": pair.ConstructName,
            "QuestionText": pair.QuestionText, "CorrectAnswerText": correct or pair.CorrectAnswerText,
            "IncorrectAnswerText": pair.IncorrectAnswerText, "OtherAnswerTexts": list(pair.OtherAnswerTexts),
            "MisconceptionId": mid, "MisconceptionName": names[mid]}


def scores_of(check: str, items: list[Item], ctx: Context, args) -> tuple[list[float], list[bool]]:
    """(score, passed) per item, with the stage's own code."""
    if check == "round-trip":
        stage = RoundTrip(args.top_k)
        stage.setup(ctx)
        ranks = stage.ranks([it.row for it in items])
        return [-float(r) for r in ranks], [r <= args.top_k for r in ranks]
    if check.startswith("pick"):
        stage = PickMisconception(args.pick_k, check.split(":")[1])
        out = []
        for (probs, _), it in zip(stage.score(items, ctx, ctx.names), items):
            out.append(stage.verdict(probs, it.row["MisconceptionId"]) if probs else (0.0, args.pick_k, False))
        return [p for p, _, _ in out], [keep for _, _, keep in out]
    if check == "judge":
        stage = RubricJudge(args.min_score)
        values = [float(o.value.score) if o.ok else -1.0 for o in ctx.ask(stage, items)]
        return values, [v >= args.min_score for v in values]
    raise ValueError(check)


def default(check: str, field: str):
    """A check option's default, from the check itself (factory.checks)."""
    return next(o.default for o in CHECKS[check].options if o.field == field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--models", default="qwen2.5-coder-0.5b",
                        help="comma-separated presets or .gguf paths; with --base-url, served model names")
    parser.add_argument("--checks", default=",".join(SCORED), help=f"comma-separated, of {', '.join(SCORED)}")
    parser.add_argument("--pick-candidates", default="mixed+retrieved-mixed,retrieved-mixed,mixed",
                        help="comma-separated rules, each a condition: nearest, mixed, retrieved, "
                             "retrieved-mixed, or several joined by + (averaged)")
    parser.add_argument("--pick-k", type=int, default=default("pick", "k"))
    parser.add_argument("--top-k", type=int, default=default("round-trip", "top_k"), help="round-trip: pass within this rank")
    parser.add_argument("--base-url", help="an OpenAI-compatible server instead of the embedded engine")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable with its API key")
    parser.add_argument("--min-score", type=float, default=default("judge", "min_score"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    unknown = [c for c in args.checks.split(",") if c.strip() and c.strip() not in SCORED]
    if unknown:
        parser.error(f"--checks: {unknown[0]!r} is not a check this benchmark scores ({', '.join(SCORED)})")

    data = load_eedi(resolve_data_dir(args.data_dir))
    names = data.misconceptions
    rng = random.Random(args.seed)
    labelled = sorted(data.train_pairs, key=lambda p: p.key)
    rng.shuffle(labelled)
    pairs = labelled[: args.pairs]
    ids = sorted(names)
    embedder = Embedder(cache=cache_dir())
    vectors = embedder.encode_cached([names[m] for m in ids], "misconceptions")
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    checks = [f"pick:{c}" for c in args.pick_candidates.split(",")] * ("pick" in checks) + \
             [c for c in checks if c != "pick"]

    def context(backends=None) -> Context:
        usage = {n: Usage() for n in ("pick", "judge", "solve")}
        return Context(backends=backends or {}, usage=usage, embedder=embedder, names=names, ids=ids,
                       vectors=vectors, real_questions=NearDuplicateIndex(embedder), max_attempts=2)

    ctx = context()
    items, kinds = [], []
    for i, p in enumerate(pairs):
        near = ctx.nearest_misconceptions(p.MisconceptionId, 1)[0]
        wrong = rng.choice([m for m in ids if m not in (p.MisconceptionId, near)])
        for kind, mid in zip(KINDS, (p.MisconceptionId, near, wrong)):
            items.append(Item(Target(mid, names[mid], -1, 0, args.seed + i, ()), row_of(p, mid, names)))
            kinds.append(kind)

    print(f"check agreement on {len(pairs)} real rows; misconception checks: labelled / nearest other / random "
          f"misconception claimed; solve: real correct answer / the wrong answer claimed as correct")
    print(f"{'model':28s} {'check':13s} {'kind':9s} {'mean':>7s} {'pass':>6s}  AUC vs labelled   wall s")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in models:
        with BackendPool(BackendOptions(base_url=args.base_url, api_key_env=args.api_key_env,
                                        engine="openai" if args.base_url else "embedded")) as pool:
            for check in checks:
                if check == "round-trip" and model != models[0]:
                    continue  # no LLM: the same for every model
                started = time.perf_counter()
                if check == "solve":
                    solver = Solver()
                    ctx = context({"solver": pool.open(model)})
                    real = [it for it, k in zip(items, kinds) if k == "labelled"]
                    outcomes = ctx.ask(solver, real)
                    answers = [o.value.answer if o.ok else "" for o in outcomes]
                    swapped = [dict(it.row, CorrectAnswerText=it.row["IncorrectAnswerText"]) for it in real]
                    agree = {"labelled": [float(solver.verdict(it.row, a) is None) for it, a in zip(real, answers)],
                             "swapped": [float(solver.verdict(r, a) is None) for r, a in zip(swapped, answers)]}
                    wall = time.perf_counter() - started
                    for kind, values in agree.items():
                        versus = "" if kind == "labelled" else f"{auc(agree['labelled'], values):.2f}"
                        print(f"{model:28s} {check:13s} {kind:9s} {statistics.fmean(values):7.2f} "
                              f"{statistics.fmean(values):6.0%}  {versus:>15s}   {wall:6.0f}", flush=True)
                    continue
                needs = {"judge": pool.open(model, logprobs=check.startswith("pick"))} if check != "round-trip" else {}
                ctx = context(needs)
                values, passed = scores_of(check, items, ctx, args)
                wall = time.perf_counter() - started
                by_kind = {k: [v for v, kk in zip(values, kinds) if kk == k] for k in KINDS}
                pass_kind = {k: [p for p, kk in zip(passed, kinds) if kk == k] for k in KINDS}
                shown = "embedded MiniLM" if check == "round-trip" else model
                for kind in KINDS:
                    versus = "" if kind == "labelled" else f"{auc(by_kind['labelled'], by_kind[kind]):.2f}"
                    print(f"{shown:28s} {check:13s} {kind:9s} {statistics.fmean(by_kind[kind]):7.2f} "
                          f"{statistics.fmean(pass_kind[kind]):6.0%}  {versus:>15s}   {wall:6.0f}", flush=True)


if __name__ == "__main__":
    from pipelines.args import all_user_errors, guard

    sys.exit(guard(main, all_user_errors()))
