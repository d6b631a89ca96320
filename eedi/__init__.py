"""The Eedi competition data: CSV loading and validation, the (question, wrong answer) pair model,
grouped splits of the real rows, and the competition's metric (MAP@25)."""
from eedi.data import (DATA_DIR_ENV, DataError, EediData, Pair, load_eedi, load_misconceptions,
                       load_questions, resolve_data_dir)
from eedi.rows import attr

__all__ = ["DATA_DIR_ENV", "DataError", "EediData", "Pair", "attr", "load_eedi", "load_misconceptions",
           "load_questions", "resolve_data_dir"]
