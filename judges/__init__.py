"""Checks on generated items, each a stage with its own reject reason: the solver, pick-the-misconception,
round-trip retrieval, the rubric judge, and the near-duplicate index."""
from judges.llm_judge import DEFAULT_MIN_SCORE, RubricJudge, Verdict
from judges.pick import CANDIDATE_RULES, DEFAULT_PICK_CANDIDATES, PickMisconception, candidate_rules
from judges.roundtrip import RoundTrip
from judges.rules import NEAR_DUPLICATE_THRESHOLD, NearDuplicateIndex
from judges.solver import Solver

__all__ = ["CANDIDATE_RULES", "DEFAULT_MIN_SCORE", "DEFAULT_PICK_CANDIDATES", "NEAR_DUPLICATE_THRESHOLD",
           "NearDuplicateIndex", "PickMisconception", "RoundTrip", "RubricJudge", "Solver", "Verdict",
           "candidate_rules"]
