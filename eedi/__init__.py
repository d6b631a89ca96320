"""The Eedi competition data: CSV loading, validation, and the (question, wrong answer) pair model."""
from eedi.data import (DATA_DIR_ENV, DataError, EediData, Pair, load_eedi, load_misconceptions,
                       load_questions, resolve_data_dir)

__all__ = ["DATA_DIR_ENV", "DataError", "EediData", "Pair", "load_eedi", "load_misconceptions",
           "load_questions", "resolve_data_dir"]
