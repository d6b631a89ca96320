"""The checks a run may choose (``--checks``), each built from the config.

To add a check: write one ``llm.stage.Stage`` subclass (``judges/``), and add one entry here; its columns
join the store schema, its counts the summary, the version record and the dataset card, and its settings
the items' ``ChecksKey`` (docs/extending.md).
"""
from __future__ import annotations

from collections.abc import Callable

from factory.config import SynthConfig
from judges import PickMisconception, RoundTrip, RubricJudge, Solver

CHECKS: dict[str, Callable[[SynthConfig], object]] = {
    "solve": lambda c: Solver(),
    "pick": lambda c: PickMisconception(c.pick_k, c.pick_candidates, c.pick_min_probability),
    "round-trip": lambda c: RoundTrip(c.consistency_top_k, c.consistency_retriever),
    "judge": lambda c: RubricJudge(c.min_score),
}
