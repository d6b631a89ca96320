"""Moved to ``eedi.splits``; this re-export stays only until pipelines/{synth,config,factory}.py import it from there."""
from eedi.splits import GROUP_KEYS, FoldSpec, group_folds, grouped_holdout, holdout_misconceptions  # noqa: F401
