"""The dataset card (README.md) of a store: YAML that declares the splits, then a table of versions."""
from __future__ import annotations

CARD_INTRO = """\
# Synthetic Eedi misconception questions

Multiple-choice maths questions written by LLMs for misconceptions of the Eedi
"Mining Misconceptions in Mathematics" competition that have few or no real
training rows, made by misconception-factory. Each row is
one (question, wrong answer) pair: `IncorrectAnswerText` is the answer a pupil
holding `MisconceptionName` would give, and `Rationale` explains how. `Mode` is
`question` (a new question) or `distractor` (a new wrong answer to the real
question `BaseQuestionId`, whose correct answer is right by construction).
`Checks` lists the checks a row passed; each check records its own score
columns (`SolverAnswer`, `PickProbability`/`PickRank`, `RoundTripRank`,
`JudgeScore`).

- split `train`: kept rows of every version.
- split `rejected`: items that failed parsing, a rule or a check, with
  `RejectStage`, `RejectReason` and the raw LLM output.

The config `cards` holds the teacher's misconception cards: one short explanation and a worked wrong
example per misconception (`Card`, with `TeacherModel` and `PromptVersion`; a row with a
`RejectReason` is a card the teacher failed to write).

Every row records its provenance: `GeneratorModel`, `SolverModel`,
`JudgeModel`, `TeacherModel`, `PromptVersion`, `ClusterId`, `Seed`, `Version`,
and the real pairs shown as examples (`ShotIds`). `versions/<Version>.json`
holds the full configuration of the run that made it.

```python
from datasets import load_dataset
kept = load_dataset("path/to/store", split="train")
```
"""


def render_card(shards: dict[str, list[str]], versions: list[dict], cards: list[str] = ()) -> str:
    """``shards``: split -> shard paths relative to the store root; ``cards``: the misconception cards' shards
    (``store.cards``), declared as the config ``cards``.

    The shards are listed one by one rather than as a glob: `datasets` keys its
    cache on the card's data_files, so a glob would keep serving the rows it
    first saw after a new version adds shards.
    """
    lines = ["---", "configs:"]
    if any(shards.values()) or not cards:
        lines += ["- config_name: default", "  data_files:"]
    for split, files in shards.items():
        if files:
            lines += [f"  - split: {split}", "    path:"] + [f"    - {f}" for f in files]
    if cards:
        lines += ["- config_name: cards", "  data_files:", "  - split: train", "    path:"] + [f"    - {f}" for f in cards]
    lines += ["license: other", "task_categories:", "- text-retrieval", "language:", "- en",
              "tags:", "- synthetic", "- education", "- mathematics", "- misconceptions", "---", ""]
    body = [CARD_INTRO, "## Versions", "",
            "| version | started | status | mode | kept | rejected | generator | judge | teacher |",
            "|---|---|---|---|---|---|---|---|---|"]
    for v in versions:
        counts = v.get("counts") or {}
        models = v.get("models") or {}
        body.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            v.get("id"), v.get("started", ""), v.get("status", ""), (v.get("config") or {}).get("mode", "question"),
            counts.get("kept", ""), counts.get("rejected", ""),
            *(models.get(r, {}).get("name", "") for r in ("generator", "judge", "teacher"))))
    staged = [v for v in versions if v.get("stages")]
    if staged:
        body += ["", "## Stages and checks", "", "Items in, passed and rejected at each stage, per version.", "",
                 "| version | stage | model | in | passed | rejected |", "|---|---|---|---|---|---|"]
        for v in staged:
            for st in v["stages"]:
                body.append(f"| {v.get('id')} | {st.get('name')} | {st.get('model') or ''} | {st.get('in', '')} | "
                            f"{st.get('passed', '')} | {st.get('rejected', '')} |")
    return "\n".join(lines + body) + "\n"
