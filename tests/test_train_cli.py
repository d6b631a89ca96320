"""python -m pipelines.train end to end on a cut-down Eedi folder and a dataset store.

The retriever is the real embedded MiniLM; the reranker base is a tiny Qwen2 built from
a transformers config (the 0.5B default is measured in benchmarks/, not here).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.train_data import add_version, make_tiny_qwen, small_eedi

pytestmark = pytest.mark.training  # every test here trains a model (or checks the training CLI's errors)


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    return make_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


def _card(folder: Path) -> dict:
    return json.loads((folder / "training_card.json").read_text())


def _error(cp) -> str:
    assert cp.returncode == 2, (cp.stdout[-2000:], cp.stderr[-2000:])
    lines = cp.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in cp.stderr, cp.stderr
    return lines[-1]


def test_train_then_retrain_on_new_shards_only(tmp_path, data_dir, tiny_qwen):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForCausalLM

    from rankers.reranker import load_reranker

    eedi = small_eedi(data_dir, tmp_path / "eedi", questions=80, extra_misconceptions=120)
    store = tmp_path / "store"
    v1 = add_version(store, eedi, 0, 6)
    quick = ["--data-dir", str(eedi), "--store", str(store), "--batch-size", "8", "--max-steps", "2",
             "--hard-negatives", "1", "--reranker-base", str(tiny_qwen), "--reranker-steps", "2", "--negatives", "2",
             "--rerank-eval", "2", "--no-progress"]
    first = tmp_path / "run1"
    cp = run_cli("pipelines.train", *quick, "--out", str(first))
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert "validation MAP@25" in cp.stdout and f"from 1 version(s) of {store}: {v1}" in cp.stdout

    card = _card(first / "retriever")
    synth = card["data"]["synthetic"]
    assert synth["versions"] == [v1] and synth["since"] is None
    assert synth["shards"] and all(v1 in s and s.startswith("data/train-") for s in synth["shards"])
    assert card["data"]["mix"]["synthetic_used"] + card["data"]["mix"]["synthetic_dropped_held_out"] == 6
    assert [h["step"] for h in card["validation"]] == [0, 2] and "map@25" in card["validation"][1]
    assert card["hyperparameters"]["batch_size"] == 8 and card["lineage"]["resumed_from"] is None
    assert SentenceTransformer(str(first / "retriever"), device="cpu").encode(["x"]).shape == (1, 384)
    rr_card = _card(first / "reranker")
    assert rr_card["base"]["kind"] == "transformers" and len(rr_card["losses"]) == 2
    assert "MAP@25" in (first / "retriever" / "README.md").read_text()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_qwen)), str(first / "reranker"))
    model, tokenizer = load_reranker(first / "reranker")  # the base named in the card, adapter on top
    assert model.peft_config["default"].r == 8 and tokenizer.decode(tokenizer.encode("Yes")) == "Yes"

    # a new version arrives: retrain from run1 on it alone
    time.sleep(1.1)  # version ids carry their start second
    v2 = add_version(store, eedi, 30, 4)
    second = tmp_path / "run2"
    cp = run_cli("pipelines.train", *quick, "--resume-from", str(first), "--out", str(second))
    assert cp.returncode == 0, cp.stderr[-3000:]
    card = _card(second / "retriever")
    synth = card["data"]["synthetic"]
    assert synth["since"] == v1 and synth["versions"] == [v2]
    assert synth["shards"] and all(v2 in s for s in synth["shards"])
    assert card["lineage"]["resumed_from"] == str(first) and card["lineage"]["versions_seen"] == [v1, v2]
    assert card["base"]["path"] == str(first / "retriever")
    assert _card(second / "reranker")["lineage"]["resumed_from"] == str(first)
    readme = (second / "retriever" / "README.md").read_text()
    assert v2 in readme and str(first) in readme

    # nothing newer: nothing to do
    cp = run_cli("pipelines.train", *quick, "--resume-from", str(second), "--out", str(tmp_path / "run3"))
    assert cp.returncode == 0 and f"no version after {v2}" in cp.stdout
    assert not (tmp_path / "run3").exists()

    # user mistakes: one line, exit 2
    assert "already holds a trained model" in _error(run_cli("pipelines.train", *quick, "--out", str(first)))
    assert f"--versions nope: no such version in {store}" in _error(
        run_cli("pipelines.train", *quick, "--versions", "nope", "--out", str(tmp_path / "x")))
    other = tmp_path / "other-store"
    add_version(other, eedi, 40, 2)
    assert "which is not in" in _error(run_cli("pipelines.train", *quick, "--store", str(other), "--resume-from",
                                               str(first), "--out", str(tmp_path / "z")))
    assert "validate on misconceptions it trained on" in _error(
        run_cli("pipelines.train", *quick, "--resume-from", str(first), "--holdout", "0.3", "--out", str(tmp_path / "y")))


def test_a_listwise_reranker_trains_and_infer_reranks_with_it(tmp_path, data_dir, tiny_qwen):
    """pipelines.train --reranker-kind listwise writes an adapter that pipelines.infer uses as listwise."""
    import pandas as pd

    eedi = small_eedi(data_dir, tmp_path / "eedi", questions=60, extra_misconceptions=60)
    run = tmp_path / "run"
    cp = run_cli("pipelines.train", "--data-dir", str(eedi), "--batch-size", "8", "--max-steps", "1",
                 "--hard-negatives", "1", "--reranker-base", str(tiny_qwen), "--reranker-kind", "listwise",
                 "--rerank-window", "4", "--reranker-steps", "2", "--rerank-eval", "2", "--no-progress",
                 "--out", str(run))
    assert cp.returncode == 0, cp.stderr[-3000:]
    card = _card(run / "reranker")
    assert card["scoring"] == "listwise" and card["hyperparameters"]["window"] == 4 and len(card["losses"]) == 2
    questions = tmp_path / "q.csv"
    pd.read_csv(data_dir / "test.csv").head(1).to_csv(questions, index=False)
    common = ["pipelines.infer", "--data-dir", str(eedi), "--questions", str(questions), "--out",
              str(tmp_path / "sub.csv"), "--retriever", str(run / "retriever"), "--reranker", str(run / "reranker"),
              "--rerank-top", "4", "--rerank-window", "4", "--no-progress"]
    cp = run_cli(*common)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert "(trained, listwise), top 4 reranked in windows of 4, both orders" in cp.stdout
    assert len((tmp_path / "sub.csv").read_text().splitlines()) == 1 + 3
    assert "a listwise reranker; it cannot rerank pointwise" in _error(run_cli(*common, "--reranker-kind", "pointwise"))


def test_train_cli_input_errors(tmp_path):
    line = _error(run_cli("pipelines.train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")))
    assert "data folder not found" in line
    cp = run_cli("pipelines.train", "--since", "v1", "--out", str(tmp_path / "o"))
    assert cp.returncode == 2 and "--since needs --store" in cp.stderr
    line = _error(run_cli("pipelines.train", "--store", str(tmp_path), "--out", str(tmp_path / "o"),
                          "--resume-from", str(tmp_path / "missing")))
    assert "--resume-from" in line and "not found" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    cp = run_cli("pipelines.train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(blocker))
    assert _error(cp) == f"error: --out {blocker}: exists and is not a folder; choose a new folder"
    assert cp.stderr.strip().count("\n") == 0 and blocker.read_text() == "mine"  # refused before training
    line = _error(run_cli("pipelines.train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(blocker / "o")))
    assert line == f"error: --out {blocker / 'o'}: {blocker} is not a folder"
    cp = run_cli("pipelines.train", "--help")
    assert cp.returncode == 0 and "--resume-from DIR" in cp.stdout and "--hard-negatives K" in cp.stdout


def test_holdout_zero_trains_on_every_real_row_without_validation(tmp_path, data_dir, tiny_qwen):
    eedi = small_eedi(data_dir, tmp_path / "eedi", questions=40, extra_misconceptions=40)
    out = tmp_path / "run"
    cp = run_cli("pipelines.train", "--data-dir", str(eedi), "--out", str(out), "--holdout", "0",
                 "--batch-size", "8", "--max-steps", "1", "--hard-negatives", "1", "--reranker-base", str(tiny_qwen),
                 "--reranker-steps", "1", "--negatives", "2", "--no-progress")
    assert cp.returncode == 0 and "Traceback" not in cp.stderr, cp.stderr[-3000:]
    assert "nothing held out (--holdout 0): no validation" in cp.stdout
    assert "no validation (--holdout 0)" in cp.stdout and "validation MAP@25" not in cp.stdout
    card = _card(out / "retriever")
    assert card["validation"] == [] and card["data"]["validation"]["rows"] == 0
    assert card["data"]["mix"]["real"] == card["data"]["real"]["train_rows"] > 0
    rr_card = _card(out / "reranker")
    assert rr_card["validation"] == [] and len(rr_card["losses"]) == 1
    assert "## Validation" not in (out / "retriever" / "README.md").read_text()


def test_a_damaged_shard_is_a_one_line_error_naming_it(tmp_path, data_dir):
    eedi = small_eedi(data_dir, tmp_path / "eedi", questions=40, extra_misconceptions=10)
    store = tmp_path / "store"
    version = add_version(store, eedi, 0, 4)
    shard = sorted((store / "data").glob(f"train-{version}-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    line = _error(run_cli("pipelines.train", "--data-dir", str(eedi), "--store", str(store), "--out",
                          str(tmp_path / "run"), "--skip-reranker", "--no-progress"))
    assert line.startswith(f"error: {shard}: damaged parquet shard (") and "move it out of data/" in line
    assert f"versions/{version}.json" in line
    assert not (tmp_path / "run").exists()
