"""The LLM-free control (``--mode pairing``): no model, every target in seconds, the distractor planner's
bases, rows the trainers and the query text accept; and ``pipelines.evaluate --control pairing``."""
from __future__ import annotations

import pytest

import json

import factory
from eedi.splits import FoldSpec
from factory import SynthConfig, prepare
from rankers.texts import query_text
from store import DatasetStore
from tests.conftest import run_cli
from tests.test_infer_cli import small_data, write_synthetic_version  # noqa: F401 - a fixture
from trainers.data import read_synthetic, synthetic_examples

FOLD = ["--hide-fold", "0", "--folds", "10"]


@pytest.mark.slow
def test_pairing_rows_label_the_distractor_planners_bases_with_no_llm(tmp_path, data_dir):
    store = tmp_path / "control"
    args = ["pipelines.synth", "--mode", "pairing", "--cluster", "all", *FOLD, "--store", str(store),
            "--data-dir", str(data_dir), "--no-progress"]
    # a model that does not exist: pairing must never resolve, assemble or start one
    r = run_cli(*args, "--model", "no-such-model")
    assert r.returncode == 0, r.stderr[-2000:]
    s = DatasetStore.open(store)
    try:
        rows, rejected, versions = s.read("train").to_pylist(), s.read("rejected").to_pylist(), s.versions()
    finally:
        s.close()
    assert not rejected and versions[-1]["status"] == "complete"
    # the same targets and the same base questions, in the same order, as a distractor run would use
    config = SynthConfig(data_dir=data_dir, mode="distractor", hide_fold=FoldSpec("MisconceptionId", 10, 0, 0))
    world = prepare(config)
    planned = factory.plan(world, config, world.chosen_targets(config))
    assert [(r["MisconceptionId"], r["BaseQuestionId"]) for r in rows] == \
        [(t.misconception_id, t.base.QuestionId) for t in planned]
    assert len({r["MisconceptionId"] for r in rows}) == len(world.chosen_targets(config))
    first = rows[0]
    assert first["Mode"] == "pairing" and first["IncorrectAnswerText"] == "" and first["Rationale"] == ""
    assert first["GeneratorModel"] == "none" and first["Checks"] == [] and first["RealRowsHidden"]
    assert first["QuestionText"] and first["CorrectAnswerText"] and len(first["OtherAnswerTexts"]) == 3
    base = next(p for p in world.data.train_pairs if p.QuestionId == first["BaseQuestionId"])
    assert first["QuestionText"] == base.QuestionText and first["CorrectAnswerText"] == base.CorrectAnswerText
    # the query leaves the wrong-answer line out; the trainers take the rows
    assert "Wrong answer" not in query_text(first) and "Correct answer: " in query_text(first)
    chosen = read_synthetic(store, "all").rows
    assert len(synthetic_examples(chosen, world.data.misconceptions)) == len(rows)
    # the same command again: nothing to do
    again = run_cli(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]


@pytest.mark.slow
def test_fill_gaps_makes_items_only_for_targets_without_a_kept_row_of_the_same_fold(tmp_path, data_dir):
    store = tmp_path / "store"
    common = ["--mode", "pairing", "--cluster", "all", "--folds", "10", "--store", str(store),
              "--data-dir", str(data_dir), "--no-progress"]
    config = SynthConfig(data_dir=data_dir, mode="pairing", hide_fold=FoldSpec("MisconceptionId", 10, 0, 0))
    targets = sorted(prepare(config).chosen_targets(config))
    earlier = targets[:5]  # stands for the targets an LLM run kept rows for
    (tmp_path / "ids.txt").write_text("".join(f"{m}\n" for m in earlier))
    steps = [["--hide-fold", "1"],  # every target of another fold: its rows fill nothing of fold 0
             ["--hide-fold", "0", "--misconceptions", str(tmp_path / "ids.txt")],
             ["--hide-fold", "0", "--fill-gaps", "--limit", "3"],  # stopped early, then re-run
             ["--hide-fold", "0", "--fill-gaps"]]
    for step in steps:
        r = run_cli("pipelines.synth", *common, *step)
        assert r.returncode == 0, r.stderr[-2000:]
    assert f"--fill-gaps: 5 of {len(targets)} targets have kept rows" in r.stderr
    s = DatasetStore.open(store)
    try:
        rows = [x for x in s.read("train").to_pylist() if x["RealRowsHidden"].endswith("fold=0")]
        versions = s.versions()
    finally:
        s.close()
    assert versions[2]["config"]["fill_gaps"] and versions[2]["attempted"] == 3
    by_version = {}
    for x in rows:
        by_version.setdefault(x["Version"], set()).add(x["MisconceptionId"])
    assert by_version[versions[1]["id"]] == set(earlier)
    filled = by_version[versions[2]["id"]] | by_version[versions[3]["id"]]
    assert filled == set(targets) - set(earlier)
    assert len(rows) == len({x["ItemKey"] for x in rows}) == 2 * len(targets)  # every item once
    again = run_cli("pipelines.synth", *common, "--hide-fold", "0", "--fill-gaps")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]
    every = run_cli("pipelines.synth", *common, "--hide-fold", "0", "--mode", "question", "--fill-gaps", "--checks",
                    "none", "--model", "no-such-model")  # no gap left for another mode either: no model is started
    assert every.returncode == 0 and "every target has a kept row" in every.stdout, every.stderr[-2000:]


def test_pairing_refuses_checks_that_read_a_wrong_answer(tmp_path, data_dir):
    for check in ("pick", "judge", "solve"):
        r = run_cli("pipelines.synth", "--mode", "pairing", "--cluster", "all", "--checks", check,
                    "--store", str(tmp_path / "s"), "--data-dir", str(data_dir))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"--checks {check}" in r.stderr and "pairing" in r.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.training
def test_evaluate_reports_each_store_against_real_rows_and_the_pairing_control(tmp_path, small_data):  # noqa: F811
    from eedi import load_eedi

    store = tmp_path / "store"
    write_synthetic_version(store, load_eedi(small_data), FoldSpec("MisconceptionId", 2, 0, 0), 20)
    report = tmp_path / "report"
    args = ["pipelines.evaluate", "--data-dir", str(small_data), "--store", str(store), "--pooled",
            "--control", "pairing,no-answers", "--report", str(report), "--folds", "2", "--only-folds", "0",
            "--schemes", "misconception", "--max-steps", "2", "--hard-negatives", "0", "--reranker", "none",
            "--unseen-boost", "1", "--no-progress"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "control: fold 0: " in r.stdout and "MisconceptionId-fold0 real+control: " in r.stdout
    runs = json.loads((report / "results.json").read_text())["runs"]
    by = {x["condition"]: x for x in runs}
    assert set(by) == {"zero-shot", "real", "real+synthetic", "real+synthetic-no-answers", "real+control"}
    assert by["real+control"]["synthetic_rows"] > 0
    # the twin trains on the very same rows, as many times
    assert by["real+synthetic-no-answers"]["synthetic_rows"] == by["real+synthetic"]["synthetic_rows"]
    assert by["real+synthetic-no-answers"]["train_rows"] == by["real+synthetic"]["train_rows"]
    text = (report / "report.md").read_text()
    assert "real+synthetic − real," in text and "real+synthetic − real+control," in text
    assert "real+control − real," in text and "real+synthetic − real+synthetic-no-answers," in text
    again = run_cli(*args)  # the control store is complete: nothing is made or retrained
    assert again.returncode == 0 and again.stdout.count("done earlier") == 5, again.stdout[-2000:]
    no_store = run_cli("pipelines.evaluate", "--data-dir", str(small_data), "--control", "no-answers",
                       "--report", str(tmp_path / "r2"), "--folds", "2", "--only-folds", "0")
    assert no_store.returncode == 2 and "Traceback" not in no_store.stderr
    assert "--control no-answers" in no_store.stderr and "--store" in no_store.stderr


def test_the_answerless_twin_keeps_each_row_but_its_llm_answer_and_reasoning():
    from evaluation.control import without_answers

    row = {"QuestionId": "synth-1", "SubjectName": "Fractions", "ConstructName": "Add fractions",
           "QuestionText": "1/2 + 1/3 = ?", "CorrectAnswerText": "5/6", "IncorrectAnswerText": "2/5",
           "Rationale": "adds the tops and the bottoms", "PupilWorking": "1+1, 2+3", "MisconceptionId": 7,
           "Mode": "distractor", "Version": "v1"}
    (twin,) = without_answers([row])
    assert row["IncorrectAnswerText"] == "2/5"  # the store's rows are not changed
    assert twin["IncorrectAnswerText"] == twin["Rationale"] == twin["PupilWorking"] == ""
    assert {k: v for k, v in twin.items() if k not in ("IncorrectAnswerText", "Rationale", "PupilWorking")} \
        == {k: v for k, v in row.items() if k not in ("IncorrectAnswerText", "Rationale", "PupilWorking")}
    assert "Wrong answer" not in query_text(twin, with_rationale=True) and "2/5" in query_text(row)
    assert query_text(twin) == query_text(row).replace("\nWrong answer: 2/5", "")
    assert synthetic_examples([twin], {7: "Adds numerators and denominators"})[0].misconception_id == 7



def test_each_store_condition_is_read_against_real_rows_every_control_and_its_own_twin_at_its_repeat():
    from evaluation.control import CONTROLS
    from evaluation.crossval import EvalConfig

    config = EvalConfig(repeats=[None, 16])
    versions = ["v1", "v2", "v1-no-answers", "v2-no-answers", "control"]
    controls = {"v1-no-answers": "v1", "v2-no-answers": "v2", "control": None}
    by = {c.condition: c for c in config.comparisons(versions, controls)}
    assert list(by)[:4] == ["real+v1", "real+v1x16", "real+v2", "real+v2x16"]  # the stores first
    assert by["real+v1x16"].baselines == ["real", "real+controlx16", "real+v1-no-answersx16"]
    assert by["real+v2"].baselines == ["real", "real+control", "real+v2-no-answers"] and not by["real+v2"].control
    assert by["real+v1-no-answers"].baselines == ["real", "real+control"] and by["real+v1-no-answers"].control
    assert by["real+control"].baselines == ["real"]
    assert [c.baselines for c in config.comparisons(["v1"])] == [["real"], ["real"]]
    assert set(CONTROLS) == {"pairing", "no-answers"}
