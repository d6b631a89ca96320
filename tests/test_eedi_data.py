from pathlib import Path

import pandas as pd
import pytest

from eedi import DataError, load_eedi, load_questions
from tests.conftest import run_cli


def test_loads_real_data(data_dir):
    data = load_eedi(data_dir)
    assert len(data.misconceptions) == 2587
    assert len(data.train_pairs) > 3000
    pair = data.train_pairs[0]
    assert pair.MisconceptionId in data.misconceptions
    assert pair.IncorrectAnswerText != pair.CorrectAnswerText
    assert len(pair.OtherAnswerTexts) == 2
    counts = data.real_row_counts()
    assert sum(counts.values()) == len(data.train_pairs)
    assert sum(1 for n in counts.values() if n == 0) > 0.3 * 2587


def test_test_csv_gives_every_wrong_answer(data_dir):
    pairs = load_questions(data_dir / "test.csv")
    assert len(pairs) == 3 * pd.read_csv(data_dir / "test.csv").shape[0]
    assert all(p.MisconceptionId is None for p in pairs)


def _edit(path: Path, **changes):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for (column, row), value in changes.get("cells", {}).items():
        df.loc[row, column] = value
    if "drop" in changes:
        df = df.drop(columns=[changes["drop"]])
    df.to_csv(path, index=False)


@pytest.mark.parametrize("change, expected", [
    ({"drop": "CorrectAnswer"}, "train.csv: missing column CorrectAnswer"),
    ({"cells": {("CorrectAnswer", 4): "E"}}, "train.csv: row 5 (QuestionId"),
    ({"cells": {("MisconceptionAId", 2): "99999"}}, "MisconceptionAId 99999 is not in misconception_mapping.csv"),
    ({"cells": {("MisconceptionBId", 0): "abc"}}, "MisconceptionBId 'abc' is not an integer"),
])
def test_bad_train_csv_names_file_row_and_problem(data_copy, change, expected):
    _edit(data_copy / "train.csv", **change)
    with pytest.raises(DataError) as e:
        load_eedi(data_copy)
    message = str(e.value)
    assert expected in message
    assert "\n" not in message
    if "row" in expected:
        assert "CorrectAnswer 'E' is not one of A, B, C, D" in message


def test_bad_mapping_and_missing_files(data_copy):
    (data_copy / "train.csv").unlink()
    with pytest.raises(DataError, match=r"train.csv: file not found"):
        load_eedi(data_copy)
    (data_copy / "misconception_mapping.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x81")
    with pytest.raises(DataError, match=r"misconception_mapping.csv: (cannot read CSV|missing column)"):
        load_eedi(data_copy)
    with pytest.raises(DataError, match="data folder not found"):
        load_eedi(data_copy / "nope")


def test_cli_reports_bad_input_in_one_line(data_copy, tmp_path):
    _edit(data_copy / "train.csv", cells={("MisconceptionCId", 3): "123456"})
    result = run_cli("pipelines.synth", "--list-clusters", "--data-dir", str(data_copy))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "train.csv: row 4" in lines[0]
    assert "MisconceptionCId 123456 is not in misconception_mapping.csv" in lines[0]
    assert "Traceback" not in result.stderr
