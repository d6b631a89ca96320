"""Load and validate the Eedi competition CSVs.

The competition ships questions in a *wide* format: one row per question with
four answer texts and, in ``train.csv``, up to four misconception ids (one per
answer letter).  Everything downstream works on *pairs*: one row per
(question, wrong answer), with its misconception when labelled.

Every problem with user-supplied files raises :class:`DataError` whose message
is one line naming the file, the row and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

LETTERS = ("A", "B", "C", "D")
DATA_DIR_ENV = "EEDI_DATA_DIR"
DEFAULT_DATA_DIR = Path("data/eedi")

QUESTION_COLUMNS = [
    "QuestionId", "ConstructId", "ConstructName", "SubjectId", "SubjectName",
    "CorrectAnswer", "QuestionText",
    *(f"Answer{x}Text" for x in LETTERS),
]
LABEL_COLUMNS = [f"Misconception{x}Id" for x in LETTERS]
MAPPING_COLUMNS = ["MisconceptionId", "MisconceptionName"]


class DataError(Exception):
    """A user's data file is missing or malformed (message: one line)."""


@dataclass(frozen=True)
class Pair:
    """One (question, wrong answer) with its misconception (None if unlabelled)."""

    QuestionId: str
    Answer: str  # the wrong answer's letter
    ConstructId: int
    ConstructName: str
    SubjectId: int
    SubjectName: str
    QuestionText: str
    CorrectAnswerText: str
    IncorrectAnswerText: str
    OtherAnswerTexts: tuple[str, ...]
    MisconceptionId: int | None

    @property
    def key(self) -> str:
        """The competition's ``QuestionId_Answer`` identifier."""
        return f"{self.QuestionId}_{self.Answer}"


@dataclass(frozen=True)
class EediData:
    misconceptions: dict[int, str]  # id -> name, all 2,587
    train_pairs: list[Pair]  # labelled pairs from train.csv

    def real_row_counts(self) -> dict[int, int]:
        counts = {mid: 0 for mid in self.misconceptions}
        for p in self.train_pairs:
            counts[p.MisconceptionId] += 1
        return counts


def resolve_data_dir(arg: str | os.PathLike | None) -> Path:
    """``--data-dir`` if given, else ``$EEDI_DATA_DIR``, else ``./data/eedi``."""
    if arg:
        return Path(arg)
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read CSV: {first}") from None


def _require_columns(df: pd.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column {', '.join(missing)}")


def _as_int(value: str, where: str, column: str) -> int:
    """Parse an id written as ``12`` or ``12.0`` (pandas writes floats for gappy columns)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise DataError(f"{where}: {column} {text!r} is not an integer")
    return int(number)


def load_misconceptions(data_dir: Path) -> dict[int, str]:
    path = data_dir / "misconception_mapping.csv"
    df = _read_csv(path)
    _require_columns(df, path, MAPPING_COLUMNS)
    out: dict[int, str] = {}
    for i, rec in enumerate(df.to_dict("records"), start=1):
        mid = _as_int(rec["MisconceptionId"], f"{path}: row {i}", "MisconceptionId")
        name = rec["MisconceptionName"].strip()
        if not name:
            raise DataError(f"{path}: row {i}: MisconceptionName is empty")
        if mid in out:
            raise DataError(f"{path}: row {i}: duplicate MisconceptionId {mid}")
        out[mid] = name
    if not out:
        raise DataError(f"{path}: no misconceptions")
    return out


def load_questions(path: Path, misconceptions: dict[int, str] | None = None,
                   labelled: bool = False) -> list[Pair]:
    """Read a wide-format question CSV into pairs, one per wrong answer.

    With ``labelled=True`` the ``Misconception{A..D}Id`` columns are required
    and only pairs with a misconception are returned (as in training); without
    it they are optional and ignored, and every wrong answer is returned (as at
    inference).  Extra columns are ignored.
    """
    df = _read_csv(path)
    _require_columns(df, path, QUESTION_COLUMNS + (LABEL_COLUMNS if labelled else []))
    pairs: list[Pair] = []
    seen_ids: set[str] = set()
    for i, rec in enumerate(df.to_dict("records"), start=1):
        qid = rec["QuestionId"].strip()
        where = f"row {i} (QuestionId {qid})" if qid else f"row {i}"
        if not qid:
            raise DataError(f"{path}: {where}: QuestionId is empty")
        if qid in seen_ids:
            raise DataError(f"{path}: {where}: duplicate QuestionId")
        seen_ids.add(qid)
        correct = rec["CorrectAnswer"].strip().upper()
        if correct not in LETTERS:
            raise DataError(f"{path}: {where}: CorrectAnswer {rec['CorrectAnswer']!r} is not one of A, B, C, D")
        texts = {x: rec[f"Answer{x}Text"].strip() for x in LETTERS}
        for x in LETTERS:
            label_col = f"Misconception{x}Id"
            mid: int | None = None
            if labelled and rec[label_col].strip():
                mid = _as_int(rec[label_col], f"{path}: {where}", label_col)
                if misconceptions is not None and mid not in misconceptions:
                    raise DataError(f"{path}: {where}: {label_col} {mid} is not in misconception_mapping.csv")
                if x == correct:
                    raise DataError(f"{path}: {where}: {label_col} labels the correct answer {x}")
            if x == correct or (labelled and mid is None):
                continue
            pairs.append(Pair(
                QuestionId=qid, Answer=x,
                ConstructId=_as_int(rec["ConstructId"], f"{path}: {where}", "ConstructId"),
                ConstructName=rec["ConstructName"].strip(),
                SubjectId=_as_int(rec["SubjectId"], f"{path}: {where}", "SubjectId"),
                SubjectName=rec["SubjectName"].strip(),
                QuestionText=rec["QuestionText"].strip(),
                CorrectAnswerText=texts[correct],
                IncorrectAnswerText=texts[x],
                OtherAnswerTexts=tuple(texts[y] for y in LETTERS if y not in (x, correct)),
                MisconceptionId=mid,
            ))
    return pairs


def load_eedi(data_dir: Path) -> EediData:
    """Load ``misconception_mapping.csv`` and the labelled pairs of ``train.csv``."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found (set --data-dir or ${DATA_DIR_ENV}; see README)")
    misconceptions = load_misconceptions(data_dir)
    pairs = load_questions(data_dir / "train.csv", misconceptions, labelled=True)
    return EediData(misconceptions=misconceptions, train_pairs=pairs)
