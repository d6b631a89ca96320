"""Can the judge tell the right misconception from a wrong one?  Real items are the ground truth.

The factory keeps an item only when the judge scores it at least --min-score, so the judge is
the filter between the generator and training.  This benchmark gives the judge --pairs real
labelled (question, wrong answer) rows of train.csv, each three times, with the same prompt the
factory uses (judges.llm_judge.LLMJudge):

- with its labelled misconception (a good judge passes it);
- with the misconception whose name is nearest to it by embedding (hard: a wrong but similar one);
- with a random misconception (easy: a good judge fails it).

It prints the mean score, the share passing --min-score and the ROC AUC (labelled against each
kind of wrong one) per model, plus tokens and wall time.  Nothing is asserted.

    python benchmarks/judge_agreement.py --data-dir ../shared/data/eedi --pairs 40 \\
        --models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b
    python benchmarks/judge_agreement.py --base-url http://127.0.0.1:8000/v1 --models MODEL   # a served judge
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
from pydantic import ValidationError

from eedi import load_eedi, resolve_data_dir
from embeddings import Embedder
from generators.question import GeneratedQuestion, Target
from judges.llm_judge import LLMJudge
from llm import BackendOptions, BackendPool, Usage, cache_dir
from llm.step import run_steps
from pipelines.config import DEFAULT_MIN_SCORE


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a labelled item outscores a wrong one), ties counting half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--models", default="qwen2.5-coder-0.5b",
                        help="comma-separated presets or .gguf paths; with --base-url, served model names")
    parser.add_argument("--base-url", help="an OpenAI-compatible server instead of the embedded engine")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable with its API key")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_eedi(resolve_data_dir(args.data_dir))
    rng = random.Random(args.seed)
    labelled = [p for p in data.train_pairs if p.MisconceptionId is not None]
    rng.shuffle(labelled)
    items = []  # real rows whose answers fit the generator's schema (some answers are images or long)
    for p in labelled:
        try:
            items.append((p, GeneratedQuestion.model_validate({
                "subject": p.SubjectName, "construct": p.ConstructName, "question": p.QuestionText,
                "correct_answer": p.CorrectAnswerText, "misconception_answer": p.IncorrectAnswerText,
                "other_wrong_answers": [a for a in p.OtherAnswerTexts if a != p.CorrectAnswerText][:2]})))
        except ValidationError:
            continue
        if len(items) == args.pairs:
            break
    ids = sorted(data.misconceptions)
    vectors = Embedder(cache=cache_dir()).encode_cached([data.misconceptions[m] for m in ids], "misconceptions")
    row_of = {m: i for i, m in enumerate(ids)}

    def nearest_other(mid: int) -> int:
        sims = vectors @ vectors[row_of[mid]]
        sims[row_of[mid]] = -np.inf
        return ids[int(sims.argmax())]

    rows, kinds = [], []
    for i, (p, item) in enumerate(items):
        wrong = rng.choice([m for m in ids if m != p.MisconceptionId])
        for kind, mid in (("labelled", p.MisconceptionId), ("nearest", nearest_other(p.MisconceptionId)),
                          ("random", wrong)):
            rows.append((Target(mid, data.misconceptions[mid], -1, 0, args.seed + i, ()), item))
            kinds.append(kind)

    print(f"judge agreement: {len(items)} real rows x (labelled, nearest other, random) misconception; "
          f"pass = score >= {args.min_score:g}")
    print(f"{'model':28s} {'kind':9s} {'mean score':>10s} {'pass':>6s}  AUC vs labelled   invalid  tok/s  wall s")
    for model in (m.strip() for m in args.models.split(",") if m.strip()):
        with BackendPool(BackendOptions(base_url=args.base_url, api_key_env=args.api_key_env)) as pool:
            backend = pool.open(model)
            usage = Usage()
            started = time.perf_counter()
            outcomes = run_steps(LLMJudge(), backend, rows, usage, max_attempts=2)
            wall = time.perf_counter() - started
        scores: dict[str, list[float]] = {"labelled": [], "nearest": [], "random": []}
        invalid = {k: 0 for k in scores}
        for kind, outcome in zip(kinds, outcomes):
            if outcome.ok:
                scores[kind].append(float(outcome.value.score))
            else:
                invalid[kind] += 1
        for kind, values in scores.items():
            mean = statistics.fmean(values) if values else float("nan")
            passed = sum(v >= args.min_score for v in values) / len(values) if values else float("nan")
            versus = "" if kind == "labelled" or not values or not scores["labelled"] else \
                f"{auc(scores['labelled'], values):.2f}"
            print(f"{model:28s} {kind:9s} {mean:10.2f} {passed:6.0%}  {versus:>15s}   {invalid[kind]:7d}  "
                  f"{usage.completion_tokens / max(wall, 1e-9):5.1f}  {wall:6.0f}")


if __name__ == "__main__":
    main()
