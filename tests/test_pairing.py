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
            "--control", "pairing", "--report", str(report), "--folds", "2", "--only-folds", "0",
            "--schemes", "misconception", "--max-steps", "2", "--hard-negatives", "0", "--reranker", "none",
            "--unseen-boost", "1", "--no-progress"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "control: fold 0: " in r.stdout and "MisconceptionId-fold0 real+control: " in r.stdout
    runs = json.loads((report / "results.json").read_text())["runs"]
    by = {x["condition"]: x for x in runs}
    assert set(by) == {"zero-shot", "real", "real+synthetic", "real+control"}
    assert by["real+control"]["synthetic_rows"] > 0
    text = (report / "report.md").read_text()
    assert "real+synthetic − real," in text and "real+synthetic − real+control," in text
    assert "real+control − real," in text
    again = run_cli(*args)  # the control store is complete: nothing is made or retrained
    assert again.returncode == 0 and again.stdout.count("done earlier") == 4, again.stdout[-2000:]
