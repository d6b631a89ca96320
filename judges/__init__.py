"""Quality gates: rule checks (distinct options, near-duplicates) and the judge LLM."""
from judges.llm_judge import LLMJudge, Verdict
from judges.rules import NEAR_DUPLICATE_THRESHOLD, NearDuplicateIndex, check_options

__all__ = ["LLMJudge", "NEAR_DUPLICATE_THRESHOLD", "NearDuplicateIndex", "Verdict", "check_options"]
