"""Cross-validation on the real rows: what the synthetic data buys on misconceptions unseen in training.

Schemes (``eedi.splits.group_folds``): folds grouped by ``MisconceptionId`` (every
validation misconception is unseen in its fold's training part) and by ``ConstructId``
(validation questions test unseen constructs; their misconceptions may be seen or not).

Conditions, on the same folds and seeds:

- ``zero-shot``: the base retriever, untrained;
- ``real``: the retriever trained on the fold's real training rows;
- ``real+<version>``: trained on those rows plus the admissible synthetic rows of a store version
  (mixed by ``trainers.data.mix``); ``real+<version>x<R>`` uses each synthetic row R times per
  epoch, where ``real+<version>`` uses the mixing rule's auto repeat (``EvalConfig.repeats``).

With misconception cards (``run_evaluation(cards=...)``), every condition also runs as ``<condition>+cards``: the
same training rows, the retriever's documents the names with their cards (``rankers.documents``), so the report
gives what the cards add to each.

Each ranked with and without the reranker, and with each unseen boost.  Pairs are reported
all together, for misconceptions seen in the fold's real training rows, and for unseen ones.

**Leak rule** (``admissible``): a synthetic row may train fold f only if none of its shots is
one of f's validation rows and its near-duplicate references excluded them, i.e. it was made
with a hidden fold (``RealRowsHidden``, ``pipelines.synth --hide-fold``) whose hidden rows
include all of f's validation rows.  Rows of ordinary runs were checked against every real
question, so they train no fold.

Every (scheme, fold, condition) result is written to ``<report>/runs/`` as it finishes; a
re-run reuses each one whose own settings are unchanged (``EvalConfig.fingerprint``: adding a
version or a repeat does not retrain ``real``), so a kill loses the condition in flight only.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from eedi import Pair
from eedi.metrics import average_precision_at_k
from eedi.splits import FoldSpec, group_folds
from inference.build import build_reranker, load_retriever
from rankers.documents import cards_digest, documents
from inference.ranking import DEFAULT_FUSE, Memoized, Reranker, Retriever, rerank
from store.files import write_json_atomic
from trainers.data import Example, MixRule, mix, real_examples, synthetic_examples
from trainers.retriever import RetrieverConfig, train_retriever

GROUPS = ("all", "seen", "unseen")
CARDS = "+cards"  # the suffix of a condition whose retriever documents carry the misconception cards
DEPTH = 100  # rankings are kept to recall@100


@dataclass
class EvalConfig:
    schemes: list[str] = field(default_factory=lambda: ["MisconceptionId", "ConstructId"])
    folds: int = 5
    fold_seed: int = 0
    only_folds: list[int] | None = None  # None: every fold
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)  # one full epoch
    mix: MixRule = field(default_factory=lambda: MixRule(per_misconception=4, ratio=math.inf))
    repeats: list[int | None] = field(default_factory=lambda: [None])  # per version, a condition per mix.repeat
    reranker: str | None = "qwen2.5-coder-0.5b"  # None: no reranked variants
    reranker_kind: str = "pointwise"  # or "listwise" (rankers.listwise)
    rerank_window: int = 8  # listwise: candidates per prompt
    rerank_orders: str = "both"  # listwise: "both" (each window also reversed) or "forward"
    top_n: int = 8
    rerank_fuse: float = DEFAULT_FUSE  # the retriever's weight in the reranked order (inference.ranking.rerank)
    rerank_pairs: int | None = 64  # validation pairs per fold reranked (None: all)
    boosts: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    k: int = 25

    def record(self) -> dict:
        record = asdict(self)
        record["mix"] = self.mix.record()
        return record

    def training_fingerprint(self, condition: str, rule: MixRule | None = None, rows: str = "") -> str:
        """What one condition's retriever depends on: its training settings (``rule``: its mixing rule;
        ``rows``: ``rows_digest`` of its synthetic rows), or the base alone for ``zero-shot``."""
        retriever = {"base": self.retriever.base} if condition == "zero-shot" else asdict(self.retriever)
        return _digest({"retriever": retriever, "mix": rule.record() if rule else None, "condition": condition,
                        "folds": self.folds, "fold_seed": self.fold_seed, "rows": rows})

    def fingerprint(self, condition: str, rule: MixRule | None = None, rows: str = "") -> str:
        """What one condition's result depends on: its retriever and how it is scored."""
        return _digest({"retriever": self.training_fingerprint(condition, rule, rows), "reranker": self.reranker_spec(),
                        "top_n": self.top_n, "rerank_pairs": self.rerank_pairs, "boosts": self.boosts, "k": self.k})

    def reranker_spec(self):
        if self.reranker is None or self.reranker_kind == "pointwise":
            return self.reranker  # as before listwise existed: earlier results stay reusable
        return [self.reranker, self.reranker_kind, self.rerank_window, self.rerank_orders]

    def make_reranker(self) -> Reranker:
        return build_reranker(self.reranker, self.reranker_kind, self.rerank_window, orders=self.rerank_orders)

    def synthetic_conditions(self, versions) -> list[tuple[str, str, MixRule]]:
        """(condition, version, mixing rule) for every version and repeat."""
        return [(condition_name(v, r), v, replace(self.mix, repeat=r)) for v in versions for r in self.repeats]

    def comparisons(self, versions, controls: dict[str, str | None] | None = None) -> list[Comparison]:
        """What each synthetic condition's lift is read against, at the same repeat: real rows, then every control
        that is a baseline of all (``controls[c]`` None) and the store version's own (``controls[c] == v``).
        ``controls``: the control versions among ``versions`` (``evaluation.control.Arm.of``); the rest are stores."""
        controls = controls or {}
        out = []
        for v in sorted(versions, key=lambda v: v in controls):  # the stores first, then the controls as added
            for r in self.repeats:
                against = [c for c, of in controls.items() if c != v and of is None]  # baselines of all, then its own
                against += [c for c, of in controls.items() if c != v and of == v]
                out.append(Comparison(condition_name(v, r), ["real", *(condition_name(c, r) for c in against)],
                                      control=v in controls))
        return out


def condition_name(version: str, repeat: int | None) -> str:
    """A synthetic condition: ``real+VERSION``, ``xR`` when its rows are used R times an epoch."""
    return f"real+{version}" + (f"x{repeat}" if repeat else "")


@dataclass(frozen=True)
class Comparison:
    condition: str
    baselines: list[str]  # "real" first
    control: bool = False  # a control's condition (evaluation.control), not a store's


def rows_digest(examples: list[Example] | None) -> str:
    """Which synthetic rows a condition trains on (a pooled condition's rows change as versions are added)."""
    keys = sorted({f"{e.source}/{e.key}" for e in examples or [] if e.source != "real"})
    return _digest(keys) if keys else ""


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def admissible(row: dict, val_keys: set[str], hidden_of: Callable[[str], set[str]]) -> bool:
    """The leak rule (module docstring) for one synthetic row and one fold's validation keys."""
    if set(row.get("ShotIds") or ()) & val_keys:
        return False
    spec = row.get("RealRowsHidden") or ""
    if not spec:
        return not val_keys
    return val_keys <= hidden_of(spec)


class HiddenRows:
    """The keys of the real rows a ``RealRowsHidden`` spec hid (computed once per spec)."""

    def __init__(self, pairs: Sequence[Pair]):
        self.pairs, self._memo = pairs, {}

    def __call__(self, spec: str) -> set[str]:
        if spec not in self._memo:
            self._memo[spec] = {p.key for p in FoldSpec.parse(spec).split(self.pairs)[1]}
        return self._memo[spec]


def group_metrics(aps: dict[str, float], hits: dict[str, int], unseen_keys: set[str], keys: Sequence[str],
                  k: int) -> dict:
    """MAP@k, recall@k, recall@100 for all pairs, seen and unseen (``hits``: rank of the truth, 0 if absent)."""
    out = {}
    for group in GROUPS:
        chosen = [key for key in keys if group == "all" or (key in unseen_keys) == (group == "unseen")]
        n = len(chosen)
        out[group] = {
            "pairs": n,
            f"map@{k}": round(sum(aps[x] for x in chosen) / n, 4) if n else None,
            f"recall@{k}": round(sum(0 < hits[x] <= k for x in chosen) / n, 4) if n else None,
            f"recall@{DEPTH}": round(sum(0 < hits[x] <= DEPTH for x in chosen) / n, 4) if n else None,
        }
    return out


def score_rankings(rankings: dict[str, list[int]], truths: dict[str, int], unseen_keys: set[str], k: int) -> dict:
    keys = list(rankings)
    aps = {x: average_precision_at_k(rankings[x], truths[x], k) for x in keys}
    hits = {x: (rankings[x].index(truths[x]) + 1 if truths[x] in rankings[x] else 0) for x in keys}
    return {"metrics": group_metrics(aps, hits, unseen_keys, keys, k), "ap": {x: round(aps[x], 4) for x in keys}}


class ScoreCache:
    """Reranker scores of a pair's candidate ids (``Memoized``): a zero-shot reranker scores a pair once for
    every condition."""

    def __init__(self, reranker: Reranker, misconceptions: dict[int, str]):
        self.memo, self.misconceptions = Memoized(reranker), misconceptions

    def __call__(self, pair: Pair, ids: list[int]) -> dict[int, float]:
        return dict(zip(ids, self.memo.score(pair, [self.misconceptions[m] for m in ids])))


def evaluate_condition(retriever: Retriever, val: list[Pair], rerank_sample: set[str], unseen_ids: set[int],
                       config: EvalConfig, scores: ScoreCache | None) -> dict:
    """Every variant (reranker off/on × boost) of one trained retriever on one fold's validation pairs."""
    truths = {p.key: int(p.MisconceptionId) for p in val}
    unseen_keys = {p.key for p in val if p.MisconceptionId in unseen_ids}
    variants = {}
    by_key = {p.key: p for p in val}
    vectors = retriever.encode(val)
    for boost in config.boosts:
        hits = retriever.search(vectors, DEPTH, retriever.bonus(unseen_ids, boost))
        plain = {p.key: ids for p, (ids, _) in zip(val, hits)}
        first = {p.key: sc for p, (_, sc) in zip(val, hits)}
        variants[f"retriever|{boost:g}"] = score_rankings(plain, truths, unseen_keys, config.k)
        if scores is not None:
            sample = {x: plain[x] for x in plain if x in rerank_sample}
            reranked = {}
            for key, ids in sample.items():
                reranked[key] = rerank(by_key[key], ids, config.top_n, scores, unseen_ids, boost, first[key],
                                       config.rerank_fuse)
            variants[f"reranker|{boost:g}"] = score_rankings(reranked, truths, unseen_keys, config.k)
            variants[f"retriever-sample|{boost:g}"] = score_rankings(sample, truths, unseen_keys, config.k)
    return variants


@dataclass
class Fold:
    scheme: str
    fold: int
    train: list[Pair]
    val: list[Pair]

    @property
    def name(self) -> str:
        return f"{self.scheme}-fold{self.fold}"


def make_folds(pairs: list[Pair], config: EvalConfig) -> list[Fold]:
    """Every (scheme, fold) of ``config``; a fold id outside 0..folds-1 is a ValueError."""
    chosen = config.only_folds if config.only_folds is not None else range(config.folds)
    outside = [f for f in chosen if not 0 <= f < config.folds]
    if outside:
        raise ValueError(f"make_folds: fold {outside[0]} is not in 0..{config.folds - 1}")
    out = []
    for scheme in config.schemes:
        assignment = group_folds(pairs, config.folds, scheme, config.fold_seed)
        for f in chosen:
            out.append(Fold(scheme, f, [p for p, a in zip(pairs, assignment) if a != f],
                            [p for p, a in zip(pairs, assignment) if a == f]))
    return out


def run_evaluation(pairs: list[Pair], misconceptions: dict[int, str], synthetic: dict[str, list[dict]],
                   config: EvalConfig, report: Path, log: Callable[[str], None] = print,
                   progress: bool = True, cache: Path | None = None,
                   cards: dict[int, str] | None = None) -> list[dict]:
    """Train and score every (fold, condition); returns one result record per (fold, condition).

    ``cache``: where the base retriever's misconception embeddings are cached (trained ones are new each time);
    ``cards``: misconception cards, for a ``+cards`` twin of every condition.
    """
    card_docs = documents(misconceptions, cards) if cards else None
    card_stamp = cards_digest(cards)
    folds = make_folds(pairs, config)  # a fold count the rows cannot honour stops here, before any file is written
    runs = report / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    hidden_of = HiddenRows(pairs)
    reranker = None
    results = []
    for fold in folds:
        rng = random.Random(f"{config.fold_seed}:{fold.name}")
        keys = [p.key for p in fold.val]
        rerank_sample = set(keys if config.rerank_pairs is None else rng.sample(keys, min(config.rerank_pairs, len(keys))))
        seen = {int(p.MisconceptionId) for p in fold.train}
        unseen_ids = set(misconceptions) - seen
        val_keys = set(keys)
        conditions: dict[str, list[Example] | None] = {"zero-shot": None, "real": real_examples(fold.train)}
        rules: dict[str, MixRule] = {}
        counts = {"zero-shot": 0, "real": 0}
        for name, version, rule in config.synthetic_conditions(synthetic):
            ok = [r for r in synthetic[version] if admissible(r, val_keys, hidden_of)]
            examples, stats = mix(conditions["real"], synthetic_examples(ok, misconceptions), rule)
            conditions[name], rules[name] = examples, rule
            counts[name] = stats["synthetic_used"]
            log(f"{fold.name} {name}: {len(ok)} of {len(synthetic[version])} synthetic rows admissible "
                f"(leak rule), {stats['synthetic_used']} used, each x{stats['synthetic_repeat']}")
        if cards:
            for name in list(conditions):
                conditions[f"{name}{CARDS}"], counts[f"{name}{CARDS}"] = conditions[name], counts[name]
                if name in rules:
                    rules[f"{name}{CARDS}"] = rules[name]
        scores = None
        done_here: dict[str, dict] = {}
        for name, examples in conditions.items():
            file = runs / f"{fold.name}-{_slug(name)}.json"
            with_cards = name.endswith(CARDS)
            docs = card_docs if with_cards else misconceptions
            digest = rows_digest(examples) + (f"+cards:{card_stamp}" if with_cards else "")
            real = f"real{CARDS}" if with_cards else "real"
            stamp = config.fingerprint(name, rules.get(name), digest)
            if file.is_file():
                done = json.loads(file.read_text())
                if done.get("fingerprint") == stamp:
                    log(f"{fold.name} {name}: done earlier ({file})")
                    results.append(done)
                    done_here[name] = done
                    continue
            if name != real and not name.startswith("zero-shot") and counts[name] == 0 and real in done_here:
                # no admissible synthetic row: the same training data as "real", so the same model
                record = {**done_here[real], "condition": name, "same_as": real, "fingerprint": stamp}
                _write_json(file, record)
                log(f"{fold.name} {name}: no admissible synthetic row, same as real")
                results.append(record)
                continue
            started = time.perf_counter()
            folder = report / "models" / fold.name / _slug(name)
            if examples is None:
                retriever_path = config.retriever.base
                train_seconds = 0.0
            else:
                retriever_path, train_seconds = folder, _train_or_reuse(
                    examples, docs, config, folder, config.training_fingerprint(name, rules.get(name), digest),
                    progress, lambda m: log(f"{fold.name} {name}: {m}"))
            retriever = load_retriever(retriever_path, misconceptions, cache=cache if examples is None else None,
                                       cards=cards if with_cards else {})
            if config.reranker and scores is None:
                if reranker is None:
                    log(f"reranker: loading {config.reranker} ({config.reranker_kind})")
                    reranker = config.make_reranker()
                scores = ScoreCache(reranker, misconceptions)
            variants = evaluate_condition(retriever, fold.val, rerank_sample, unseen_ids, config, scores)
            covered = {e.misconception_id for e in examples or [] if e.source != "real"}
            record = {"fingerprint": stamp, "scheme": fold.scheme, "fold": fold.fold, "condition": name,
                      "train_rows": len(examples or []), "synthetic_rows": counts[name],
                      "synthetic_misconceptions": len(covered),
                      # validation pairs whose misconception has synthetic training rows here
                      "covered_pairs": [p.key for p in fold.val if p.MisconceptionId in covered],
                      "val_pairs": len(fold.val), "rerank_pairs": len(rerank_sample) if scores else 0,
                      "unseen_val_pairs": sum(p.MisconceptionId in unseen_ids for p in fold.val),
                      "seconds": {"train": train_seconds, "total": round(time.perf_counter() - started, 1)},
                      "variants": variants}
            _write_json(file, record)
            done_here[name] = record
            best = variants[f"retriever|{config.boosts[0]:g}"]["metrics"]
            log(f"{fold.name} {name}: MAP@{config.k} all {best['all'][f'map@{config.k}']} "
                f"unseen {best['unseen'][f'map@{config.k}']} ({record['seconds']['total']:.0f} s)")
            results.append(record)
    return results


def _train_or_reuse(examples: list[Example], misconceptions: dict[int, str], config: EvalConfig, folder: Path,
                    stamp: str, progress: bool, log: Callable[[str], None]) -> float:
    """Train the condition's retriever into ``folder``, or reuse the one there trained with the same
    settings (a run that changes only the reranker, boosts or metrics retrains nothing); returns the
    training seconds."""
    marker = folder / "evaluation_training.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("fingerprint") == stamp:
            log(f"retriever trained earlier ({folder})")
            return done["train_seconds"]
    marker.unlink(missing_ok=True)
    trained = train_retriever(examples, [], misconceptions, config.retriever, folder, progress=progress, log=log)
    _write_json(marker, {"fingerprint": stamp, "train_seconds": trained.train_seconds})
    return trained.train_seconds


def summarise(results: list[dict], k: int = 25) -> list[dict]:
    """Mean and standard deviation over folds of every (scheme, condition, variant, group, metric)."""
    table: dict[tuple, list[dict]] = {}
    for r in results:
        for variant, v in r["variants"].items():
            table.setdefault((r["scheme"], r["condition"], variant), []).append(v["metrics"])
    rows = []
    for (scheme, condition, variant), folds in table.items():
        stage, boost = variant.split("|")
        row = {"scheme": scheme, "condition": condition, "stage": stage, "boost": float(boost), "folds": len(folds)}
        for group in GROUPS:
            for metric in (f"map@{k}", f"recall@{k}", f"recall@{DEPTH}"):
                values = [f[group][metric] for f in folds if f[group][metric] is not None]
                row[f"{group} {metric}"] = _mean_sd(values)
            row[f"{group} pairs"] = sum(f[group]["pairs"] for f in folds)
        rows.append(row)
    return rows


def uplift(results: list[dict], condition: str, baseline: str = "real", variant: str = "retriever|1",
           group: str = "unseen", k: int = 25) -> dict[str, list[float]]:
    """Per scheme, the per-fold MAP@k differences condition - baseline (same folds)."""
    by = {(r["scheme"], r["fold"], r["condition"]): r for r in results}
    out: dict[str, list[float]] = {}
    for (scheme, fold, cond), r in sorted(by.items()):
        base = by.get((scheme, fold, baseline))
        if cond != condition or base is None or variant not in r["variants"]:
            continue
        a = r["variants"][variant]["metrics"][group][f"map@{k}"]
        b = base["variants"][variant]["metrics"][group][f"map@{k}"]
        if a is not None and b is not None:
            out.setdefault(scheme, []).append(round(a - b, 4))
    return out


def covered_uplift(results: list[dict], condition: str, baseline: str = "real",
                   variant: str = "retriever|1") -> dict[str, list[tuple]]:
    """Per scheme and fold: (pairs, baseline MAP, condition MAP, 95% interval of the difference) over
    the validation pairs whose misconception has synthetic rows in ``condition`` (what the synthetic
    rows do where they exist)."""
    by = {(r["scheme"], r["fold"], r["condition"]): r for r in results}
    out: dict[str, list[tuple]] = {}
    for (scheme, fold, cond), r in sorted(by.items()):
        base = by.get((scheme, fold, baseline))
        keys = r.get("covered_pairs") or []
        if cond != condition or base is None or not keys or variant not in r["variants"]:
            continue
        a, b = r["variants"][variant]["ap"], base["variants"][variant]["ap"]
        out.setdefault(scheme, []).append((len(keys), round(statistics.fmean(b[x] for x in keys), 4),
                                           round(statistics.fmean(a[x] for x in keys), 4),
                                           paired_interval([a[x] - b[x] for x in keys])))
    return out


def paired_interval(differences: Sequence[float], seed: int = 0, draws: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the mean per-pair difference (same pairs, two models): the noise of
    one fold's pairs, not the fold-to-fold spread."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(differences, k=len(differences))) for _ in range(draws))
    return round(means[int(0.025 * draws)], 4), round(means[int(0.975 * draws) - 1], 4)


def _mean_sd(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return (round(statistics.fmean(values), 4), round(statistics.stdev(values), 4) if len(values) > 1 else 0.0)


def _write_json(file: Path, record: dict) -> None:
    write_json_atomic(file, record, indent=None, sort_keys=False)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
