"""Cross-validation on the real rows: train a retriever per fold and condition, rank with ``inference``, report.

- ``crossval``: folds, conditions, the leak rule (``admissible``), metrics by seen/unseen pairs, per-run records.
- ``report``: the summary table (mean ± sd over folds), uplift per fold and per cluster, plots.
"""
