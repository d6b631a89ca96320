"""The evaluation report: ``report.md``, ``results.json`` and two plots (MAP@25 by condition, uplift by cluster)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from evaluation.crossval import CARDS, DEPTH, Comparison, covered_uplift, summarise, uplift

SCHEME_NAMES = {"MisconceptionId": "grouped by misconception", "ConstructId": "grouped by construct"}


def _fmt(value) -> str:
    if value is None:
        return "-"
    mean, sd = value
    return f"{mean:.3f} ± {sd:.3f}"


def table_markdown(rows: list[dict], k: int = 25) -> list[str]:
    lines = [f"| scheme | condition | stage | boost | folds | all MAP@{k} | seen MAP@{k} | unseen MAP@{k} | "
             f"all recall@{k} | all recall@{DEPTH} | unseen recall@{k} | pairs (all/seen/unseen) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {SCHEME_NAMES.get(r['scheme'], r['scheme'])} | {r['condition']} | {r['stage']} | {r['boost']:g} | "
            f"{r['folds']} | {_fmt(r[f'all map@{k}'])} | {_fmt(r[f'seen map@{k}'])} | {_fmt(r[f'unseen map@{k}'])} | "
            f"{_fmt(r[f'all recall@{k}'])} | {_fmt(r[f'all recall@{DEPTH}'])} | {_fmt(r[f'unseen recall@{k}'])} | "
            f"{r['all pairs']}/{r['seen pairs']}/{r['unseen pairs']} |")
    return lines


def cluster_uplift(results: list[dict], condition: str, cluster_of: dict[str, int], baseline: str = "real",
                   variant: str = "retriever|1") -> dict[int, tuple[float, int]]:
    """Per cluster: mean AP difference (condition - baseline) over the validation pairs of its misconceptions."""
    by = {(r["scheme"], r["fold"], r["condition"]): r for r in results}
    deltas: dict[int, list[float]] = {}
    for (scheme, fold, cond), r in by.items():
        base = by.get((scheme, fold, baseline))
        if cond != condition or base is None or scheme != "MisconceptionId":
            continue
        a, b = r["variants"][variant]["ap"], base["variants"][variant]["ap"]
        for key in a.keys() & b.keys():
            if key in cluster_of:
                deltas.setdefault(cluster_of[key], []).append(a[key] - b[key])
    return {c: (statistics.fmean(v), len(v)) for c, v in deltas.items()}


def plot_map(rows: list[dict], path: Path, k: int = 25) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [r for r in rows if r["stage"] != "retriever-sample"]
    schemes = sorted({r["scheme"] for r in chosen})
    fig, axes = plt.subplots(1, len(schemes), figsize=(9 * len(schemes), 0.35 * len(chosen) + 2.5), squeeze=False)
    for ax, scheme in zip(axes[0], schemes):
        sel = [r for r in chosen if r["scheme"] == scheme]
        labels = [f"{r['condition']} | {r['stage']} | boost {r['boost']:g}" for r in sel]
        for offset, group, colour in ((-0.2, "all", "tab:blue"), (0.2, "unseen", "tab:orange")):
            means = [(r[f"{group} map@{k}"] or (0, 0))[0] for r in sel]
            sds = [(r[f"{group} map@{k}"] or (0, 0))[1] for r in sel]
            ax.barh([i + offset for i in range(len(sel))], means, height=0.4, xerr=sds, color=colour, label=group)
        ax.set_yticks(range(len(sel)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"MAP@{k} (mean ± sd over folds)")
        ax.set_title(SCHEME_NAMES.get(scheme, scheme))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cluster_uplift(per_cluster: dict[int, tuple[float, int]], path: Path, title: str, top: int = 30) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(per_cluster.items(), key=lambda kv: -kv[1][1])[:top]
    items.sort(key=lambda kv: kv[1][0])
    fig, ax = plt.subplots(figsize=(8, 0.25 * max(len(items), 4) + 1.5))
    if items:
        ax.barh(range(len(items)), [v[0] for _, v in items],
                color=["tab:green" if v[0] >= 0 else "tab:red" for _, v in items])
        ax.set_yticks(range(len(items)), [f"cluster {c} ({v[1]} pairs)" for c, v in items], fontsize=7)
    else:
        ax.text(0.5, 0.5, "no pairs to compare", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("mean AP@25 difference over the cluster's validation pairs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lift_line(results: list[dict], condition: str, baseline: str, k: int) -> list[str]:
    out = []
    for scheme, deltas in uplift(results, condition, baseline).items():
        mean = statistics.fmean(deltas)
        sd = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
        out.append(f"- {condition} − {baseline}, {SCHEME_NAMES.get(scheme, scheme)}, unseen MAP@{k} "
                   f"(retriever, no boost): per fold {', '.join(f'{d:+.4f}' for d in deltas)}; "
                   f"mean {mean:+.4f} ± {sd:.4f} (sd over {len(deltas)} folds)")
    return out


def _cards_section(results: list[dict], comparisons: list[Comparison], k: int) -> list[str]:
    """What the misconception cards add to each condition (the same training rows, documents with cards)."""
    present = {r["condition"] for r in results}
    pairs = [(c + CARDS, c) for c in ["zero-shot", "real", *(c.condition for c in comparisons)] if c + CARDS in present]
    if not pairs:
        return []
    lines = ["", "## Misconception cards", "",
             "Each `+cards` condition is its twin trained on the same rows, with every misconception's card "
             "appended to its name in training and ranking."]
    for with_cards, without in pairs:
        lines += _lift_line(results, with_cards, without, k)
    for c in comparisons:  # the synthetic rows' lift when both sides have cards
        for baseline in c.baselines:
            lines += _lift_line(results, c.condition + CARDS, baseline + CARDS, k)
    return lines


def write_report(results: list[dict], report: Path, config_record: dict, header: list[str],
                 cluster_of: dict[str, int], k: int = 25, comparisons: list[Comparison] | None = None) -> Path:
    """Write report.md, results.json, map_by_condition.png, uplift_by_cluster.png; returns report.md.
    ``comparisons`` (``EvalConfig.comparisons``): each synthetic condition's baselines (default: real rows)."""
    rows = summarise(results, k)
    rows.sort(key=lambda r: (r["scheme"] != "MisconceptionId", r["condition"] != "zero-shot",
                             r["condition"] != "real", r["condition"], r["stage"], r["boost"]))
    (report / "results.json").write_text(json.dumps({"config": config_record, "summary": rows, "runs": results},
                                                    indent=1, default=str) + "\n")
    plot_map(rows, report / "map_by_condition.png", k)
    if comparisons is None:
        comparisons = [Comparison(c, ["real"]) for c in sorted({r["condition"] for r in results if r["condition"]
                                                                .startswith("real+") and not r["condition"].endswith(CARDS)})]
    present = {r["condition"] for r in results}
    comparisons = [c for c in comparisons if c.condition in present]
    lines = ["# Evaluation", "", *header, "", f"## MAP@{k} by condition (mean ± sd over folds)", "",
             *table_markdown([r for r in rows if r["stage"] != "retriever-sample"], k), ""]
    sample = [r for r in rows if r["stage"] == "retriever-sample"]
    if sample:
        lines += ["`reranker` rows are computed on a seeded sample of each fold's validation pairs; the same "
                  "pairs ranked by the retriever alone:", "", *table_markdown(sample, k), ""]
    lines += ["![MAP by condition](map_by_condition.png)", "", "## Uplift of synthetic data", ""]
    if not comparisons:
        lines.append("No synthetic version was evaluated (`--store`, `--versions`).")
    for c in comparisons:
        condition = c.condition
        used = {(r["scheme"], r["fold"]): r["synthetic_rows"] for r in results if r["condition"] == condition}
        lines.append(f"- {condition}: synthetic rows used per fold (admissible under the leak rule, after the "
                     "per-misconception cap): " + ", ".join(f"{SCHEME_NAMES.get(s, s)} fold {f}: {n}"
                                                          for (s, f), n in sorted(used.items())))
        for baseline in c.baselines:  # real rows, the controls, its answerless twin
            lines += _lift_line(results, condition, baseline, k)
        for scheme, folds in covered_uplift(results, condition).items():
            lines.append(f"- {condition}, {SCHEME_NAMES.get(scheme, scheme)}, on the validation pairs whose "
                         f"misconception has synthetic rows: " + "; ".join(
                             f"{n} pairs, MAP@{k} {b:.4f} (real) → {a:.4f} ({a - b:+.4f}, 95% interval over "
                             f"pairs {lo:+.4f} to {hi:+.4f})" for n, b, a, (lo, hi) in folds))
    lines += _cards_section(results, comparisons, k)
    if comparisons:
        stores = [c.condition for c in comparisons if not c.control]
        shown = stores[-1] if stores else comparisons[-1].condition
        per_cluster = cluster_uplift(results, shown, cluster_of)
        plot_cluster_uplift(per_cluster, report / "uplift_by_cluster.png",
                            f"{shown} - real, folds grouped by misconception (retriever, no boost)")
        lines += ["", "![uplift by cluster](uplift_by_cluster.png)"]
    path = report / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
