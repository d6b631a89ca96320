"""Checks on generated items, each a stage with its own reject reason: the solver, pick-the-misconception,
round-trip retrieval, the rubric judge, the near-duplicate index; and the chooser among a writer's answers."""
from judges.choose import ChooseAnswer
from judges.llm_judge import DEFAULT_MIN_SCORE, RubricJudge, Verdict
from judges.pick import CANDIDATE_RULES, DEFAULT_PICK_CANDIDATES, PickMisconception, candidate_rules
from judges.roundtrip import RoundTrip
from judges.rules import NEAR_DUPLICATE_THRESHOLD, NearDuplicateIndex
from judges.solver import Solver

__all__ = ["CANDIDATE_RULES", "ChooseAnswer", "DEFAULT_MIN_SCORE", "DEFAULT_PICK_CANDIDATES", "NEAR_DUPLICATE_THRESHOLD",
           "NearDuplicateIndex", "PickMisconception", "RoundTrip", "RubricJudge", "Solver", "Verdict",
           "candidate_rules"]
