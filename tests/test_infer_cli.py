"""python -m pipelines.infer and python -m pipelines.evaluate as a user runs them."""
import csv
import json
import math

import pandas as pd
import pytest

from eedi import load_eedi, load_questions
from eedi.splits import FoldSpec
from inference.build import newest_run
from store import DatasetStore
from tests.conftest import run_cli


@pytest.fixture
def one_question(tmp_path, data_dir):
    """The first question of test.csv alone (3 wrong answers): rerankers on CPU cost seconds per pair."""
    path = tmp_path / "one.csv"
    pd.read_csv(data_dir / "test.csv").head(1).to_csv(path, index=False)
    return path


def read_submission(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["QuestionId_Answer", "MisconceptionId"]
    return [(key, [int(x) for x in ids.split(" ")]) for key, ids in rows[1:]]


def assert_valid(submission, pairs, misconceptions):
    assert [key for key, _ in submission] == [p.key for p in pairs]  # one row per wrong answer, input order
    for _, ids in submission:
        assert len(ids) == 25 == len(set(ids))
        assert set(ids) <= set(misconceptions)


@pytest.mark.slow
def test_infer_on_test_csv_writes_a_valid_submission(tmp_path, data_dir):
    out = tmp_path / "sub" / "submission.csv"
    r = run_cli("pipelines.infer", "--data-dir", str(data_dir), "--questions", str(data_dir / "test.csv"),
                "--out", str(out), "--reranker", "none", "--models", str(tmp_path / "none"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "embedded, zero-shot" in r.stdout
    data = load_eedi(data_dir)
    pairs = load_questions(data_dir / "test.csv")
    submission = read_submission(out)
    assert_valid(submission, pairs, data.misconceptions)
    sample = pd.read_csv(data_dir / "sample_submission.csv")
    assert [k for k, _ in submission] == sample["QuestionId_Answer"].tolist()
    assert not list(out.parent.glob(".*.tmp"))


@pytest.mark.training
def test_an_ensemble_of_two_retrievers_writes_a_valid_submission(tmp_path, data_dir):
    """--retriever twice, rank average: a valid submission and each member's share in the summary."""
    from rankers.retriever import load_encoder

    copy = tmp_path / "minilm-copy"
    _, _, path = load_encoder(None)
    import shutil
    shutil.copytree(path, copy)  # a second retriever folder (the same weights: the ensemble must agree with it)
    out = tmp_path / "submission.csv"
    args = ["pipelines.infer", "--data-dir", str(data_dir), "--questions", str(data_dir / "test.csv"), "--out", str(out),
            "--reranker", "none", "--retriever", "embedded", "--retriever", str(copy), "--no-progress"]
    r = run_cli(*args, "--ensemble", "rank", "--ensemble-weights", "2,1")
    assert r.returncode == 0, r.stderr
    assert "ensemble: 2 retrievers by rank average, weights 0.67, 0.33" in r.stdout
    assert f"ensemble member {copy}: 100% of the final top 25 in its own top 25" in r.stdout
    assert_valid(read_submission(out), load_questions(data_dir / "test.csv"), load_eedi(data_dir).misconceptions)
    bad = run_cli(*args, "--ensemble-weights", "1")
    assert bad.returncode == 2 and "--ensemble-weights: 2 positive numbers expected" in bad.stderr


@pytest.mark.slow
def test_labelled_questions_boost_and_streaming(tmp_path, data_dir):
    """A wide CSV with label columns (ignored), scored independently; a large boost fills the top with unseen ids."""
    train = pd.read_csv(data_dir / "train.csv", dtype=str, keep_default_na=False)
    questions = tmp_path / "labelled.csv"
    train.head(40).to_csv(questions, index=False)
    data = load_eedi(data_dir)
    unseen = {m for m, n in data.real_row_counts().items() if n == 0}
    outs = {}
    for boost, batch in (("1", "256"), ("1", "5"), ("1000", "256")):
        out = tmp_path / f"sub-{boost}-{batch}.csv"
        r = run_cli("pipelines.infer", "--data-dir", str(data_dir), "--questions", str(questions), "--out", str(out),
                    "--reranker", "none", "--unseen-boost", boost, "--batch-size", batch,
                    "--models", str(tmp_path / "none"), "--no-progress")
        assert r.returncode == 0, r.stderr
        outs[(boost, batch)] = read_submission(out)
    pairs = load_questions(questions)
    assert_valid(outs[("1", "256")], pairs, data.misconceptions)
    assert outs[("1", "256")] == outs[("1", "5")]
    assert all(set(ids) <= unseen for _, ids in outs[("1000", "256")])
    # scored independently: MAP@25 over the labelled pairs
    labelled = {p.key: p.MisconceptionId for p in load_questions(questions, data.misconceptions, labelled=True)}
    ranked = dict(outs[("1", "256")])
    ap = [1 / (ranked[k].index(m) + 1) if m in ranked[k] else 0.0 for k, m in labelled.items()]
    assert 0 < sum(ap) / len(ap) < 1


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing file", "missing column", "bad retriever", "bad boost", "bad fuse"])
def test_user_mistakes_are_one_line_errors(tmp_path, data_dir, case):
    out = tmp_path / "s.csv"
    args = ["--data-dir", str(data_dir), "--questions", str(data_dir / "test.csv"), "--out", str(out),
            "--reranker", "none", "--no-progress"]
    if case == "missing file":
        args[3] = str(tmp_path / "nope.csv")
    elif case == "missing column":
        broken = tmp_path / "broken.csv"
        pd.read_csv(data_dir / "test.csv", dtype=str).drop(columns=["AnswerCText"]).to_csv(broken, index=False)
        args[3] = str(broken)
    elif case == "bad retriever":
        (tmp_path / "empty").mkdir()
        args += ["--retriever", str(tmp_path / "empty")]
    elif case == "bad boost":
        args += ["--unseen-boost", "0"]
    else:
        args += ["--rerank-fuse", "-1"]
    r = run_cli("pipelines.infer", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and "error:" in lines[-1], r.stderr
    if not case.startswith("bad ") or case == "bad retriever":  # argparse adds its usage line above the error
        assert len(lines) == 1, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["out is the questions file", "out is a folder", "out under a file"])
def test_the_output_path_is_checked_before_the_work_starts(tmp_path, data_dir, case):
    questions = tmp_path / "questions.csv"
    questions.write_bytes((data_dir / "test.csv").read_bytes())
    out = {"out is the questions file": questions, "out is a folder": tmp_path,
           "out under a file": questions / "s.csv"}[case]
    r = run_cli("pipelines.infer", "--data-dir", str(data_dir), "--questions", str(questions), "--out", str(out),
                "--reranker", "none", "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == {
        "out is the questions file": f"error: --out {out} is the --questions file: the submission would replace it; "
                                     "choose another file",
        "out is a folder": f"error: --out {out}: is a folder; name the file to write",
        "out under a file": f"error: --out {out}: {questions} is not a folder"}[case]
    assert r.stdout == ""  # refused before anything was loaded
    assert questions.read_bytes() == (data_dir / "test.csv").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["questions.csv"]  # no temp file left


def test_newest_trained_run_is_the_default(tmp_path):
    for name, finished in (("a", "2026-01-02T00:00:00Z"), ("b", "2026-03-01T00:00:00Z"), ("c", "2026-02-01T00:00:00Z")):
        folder = tmp_path / name / "retriever"
        folder.mkdir(parents=True)
        (folder / "training_card.json").write_text(json.dumps({"finished": finished}))
    assert newest_run(tmp_path, "retriever") == tmp_path / "b" / "retriever"
    assert newest_run(tmp_path, "reranker") is None


@pytest.mark.llm
@pytest.mark.parametrize("kind, line", [  # listwise in process: tests/test_train_cli.py and test_merge.py (tiny model)
    ("pointwise", "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M (zero-shot, pointwise), top 4 reranked"),
])
def test_infer_with_the_zero_shot_reranker(tmp_path, data_dir, kind, line, one_question):
    out = tmp_path / "submission.csv"
    r = run_cli("pipelines.infer", "--data-dir", str(data_dir), "--questions", str(one_question),
                "--out", str(out), "--models", str(tmp_path / "none"), "--rerank-top", "4", "--no-progress",
                "--reranker-kind", kind, "--rerank-window", "4")
    assert r.returncode == 0, r.stderr
    assert line in r.stdout
    data = load_eedi(data_dir)
    assert_valid(read_submission(out), load_questions(one_question), data.misconceptions)


@pytest.mark.llm
def test_infer_reranks_listwise_through_a_server_started_by_hand(tmp_path, data_dir, one_question):
    """llama.cpp's server as a user starts it (logits kept for logprobs); the served model reranks zero-shot."""
    from llm import DEFAULT_PRESET, resolve_model
    from llm.server import LlamaServer

    out = tmp_path / "submission.csv"
    server = LlamaServer(resolve_model(DEFAULT_PRESET).path, alias="served-qwen", n_ctx=2048, log_dir=tmp_path,
                         logits_all=True)
    with server:
        r = run_cli("pipelines.infer", "--data-dir", str(data_dir), "--questions", str(one_question),
                    "--out", str(out), "--models", str(tmp_path / "none"), "--rerank-top", "6", "--no-progress",
                    "--reranker-base-url", server.base_url, "--rerank-window", "4", "--rerank-stride", "2",
                    "--request-cache", str(tmp_path / "rerank.sqlite"), "--rerank-fuse", "1")
    assert r.returncode == 0, r.stderr
    assert "served-qwen served at" in r.stdout and "top 6 reranked in windows of 4, both orders" in r.stdout
    assert "fused with the retriever (weight 1)" in r.stdout
    pairs = load_questions(one_question)
    # 6 candidates in windows of 4, stride 2: windows at 0 and 2, each in both orders
    assert f"reranker requests: {4 * len(pairs)} (0 from the cache)" in r.stdout
    assert "0 answers without a letter" in r.stdout
    assert_valid(read_submission(out), pairs, load_eedi(data_dir).misconceptions)
    bad = run_cli("pipelines.infer", "--data-dir", str(data_dir), "--questions", str(data_dir / "test.csv"),
                  "--out", str(out), "--reranker-base-url", "http://127.0.0.1:9/v1")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "127.0.0.1:9/v1: cannot connect" in bad.stderr.strip().splitlines()[-1]


def write_synthetic_version(store_path, data, spec: FoldSpec | None, n: int):
    """A store version whose rows copy real pairs of the spec's fold (stand-ins for generated items)."""
    from factory.stages import all_stage_columns

    rest, held = spec.split(data.train_pairs) if spec else (data.train_pairs, data.train_pairs)
    store = DatasetStore.open(store_path, all_stage_columns())  # the columns the factory writes
    try:
        writer = store.new_version({"config": {"hide_fold": str(spec) if spec else None}})
        for i, p in enumerate(held[:n]):
            writer.append("train", {
                "QuestionId": f"syn-{writer.version}-{i}", "SubjectName": p.SubjectName,
                "ConstructName": p.ConstructName, "QuestionText": p.QuestionText + " (variant)",
                "CorrectAnswerText": p.CorrectAnswerText, "IncorrectAnswerText": p.IncorrectAnswerText,
                "MisconceptionId": p.MisconceptionId, "Rationale": "", "JudgeScore": 9.0,
                "Version": writer.version,
                "ItemKey": f"{p.MisconceptionId}:{i}:0:test" + (f":hide={spec}" if spec else ""),  # as the factory keys
                "ShotIds": [rest[0].key], "RealRowsHidden": str(spec) if spec else ""})
        return writer.finish("complete")["id"]
    finally:
        store.close()


@pytest.fixture
def small_data(tmp_path, data_dir):
    """A smaller data folder cut from the shared one: 120 misconceptions with rows, 120 without."""
    mapping = pd.read_csv(data_dir / "misconception_mapping.csv", dtype=str, keep_default_na=False)
    train = pd.read_csv(data_dir / "train.csv", dtype=str, keep_default_na=False)
    labels = [f"Misconception{x}Id" for x in "ABCD"]
    as_id = {v: int(float(v)) for c in labels for v in train[c] if v}  # the file writes ids as 2142.0
    labelled = sorted(set(as_id.values()), key=lambda m: (m * 7919) % 1009)[:120]
    others = sorted(set(mapping["MisconceptionId"].astype(int)) - set(labelled))[:120]
    keep = {v for v, m in as_id.items() if m in set(labelled)}
    for c in labels:
        train[c] = train[c].where(train[c].isin(keep), "")
    train = train[(train[labels] != "").any(axis=1)]
    folder = tmp_path / "small"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    mapping[mapping["MisconceptionId"].astype(int).isin(set(labelled) | set(others))].to_csv(
        folder / "misconception_mapping.csv", index=False)
    return folder


@pytest.mark.training
def test_evaluate_writes_a_report_and_applies_the_leak_rule(tmp_path, small_data):
    data_dir = small_data
    data = load_eedi(data_dir)
    store = tmp_path / "store"
    fold0 = FoldSpec("MisconceptionId", 2, 0, 0)
    hidden_version = write_synthetic_version(store, data, fold0, 30)
    ordinary_version = write_synthetic_version(store, data, None, 30)
    report = tmp_path / "report"
    args = ["pipelines.evaluate", "--data-dir", str(data_dir), "--store", str(store), "--report", str(report),
            "--folds", "2", "--only-folds", "0", "--max-steps", "2", "--hard-negatives", "0",
            "--reranker", "none", "--unseen-boost", "1,2", "--no-progress"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"MisconceptionId-fold0 real+{hidden_version}: 30 of 30 synthetic rows admissible" in r.stdout
    assert f"MisconceptionId-fold0 real+{ordinary_version}: 0 of 30" in r.stdout
    assert f"ConstructId-fold0 real+{hidden_version}: 0 of 30" in r.stdout
    for name in ("report.md", "results.json", "map_by_condition.png", "uplift_by_cluster.png"):
        assert (report / name).is_file(), name
    results = json.loads((report / "results.json").read_text())
    conditions = {(r["scheme"], r["condition"]) for r in results["runs"]}
    assert conditions == {(s, c) for s in ("MisconceptionId", "ConstructId")
                          for c in ("zero-shot", "real", f"real+{hidden_version}", f"real+{ordinary_version}")}
    by = {(r["scheme"], r["condition"]): r for r in results["runs"]}
    assert by[("MisconceptionId", f"real+{hidden_version}")]["synthetic_rows"] == 30
    misc = by[("MisconceptionId", "real")]["variants"]["retriever|1"]["metrics"]
    assert misc["seen"]["pairs"] == 0 and misc["unseen"]["pairs"] == misc["all"]["pairs"] > 0
    text = (report / "report.md").read_text()
    assert "unseen MAP@25" in text and f"real+{hidden_version} − real" in text
    covered = by[("MisconceptionId", f"real+{hidden_version}")]["covered_pairs"]
    assert covered and f"real+{hidden_version}, grouped by misconception, on the validation pairs whose" in text
    assert by[("ConstructId", f"real+{hidden_version}")]["same_as"] == "real"
    # the same command again reuses every finished condition
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done earlier") == 8
    # other boosts: every condition is scored again, but no retriever is retrained
    boosts = run_cli(*args[:-2], "1,4", "--no-progress")
    assert boosts.returncode == 0, boosts.stderr
    assert boosts.stdout.count("retriever trained earlier") == 3 and "done earlier" not in boosts.stdout
    # the versions pooled into one condition: the leak rule still admits the hidden fold's rows only
    pooled = run_cli(*args[:-2], "1,4", "--no-progress", "--pooled")
    assert pooled.returncode == 0, pooled.stderr
    assert "MisconceptionId-fold0 real+synthetic: 30 of 60 synthetic rows admissible" in pooled.stdout
    assert pooled.stdout.count("done earlier") == 4  # zero-shot and real, both schemes
    # two epochs: every trained condition is trained again (the zero-shot runs are kept)
    epochs = run_cli(*args[:-2], "1,4", "--no-progress", "--pooled", "--epochs", "2")
    assert epochs.returncode == 0, epochs.stderr
    assert epochs.stdout.count("done earlier") == 2
    assert json.loads((report / "results.json").read_text())["config"]["retriever"]["epochs"] == 2
    assert not math.isnan(results["summary"][0]["folds"])


@pytest.mark.parametrize("flags, message", [
    (["--folds", "100000"], "error: --folds 100000: the {rows:,} real rows have only {groups:,} distinct "
                            "MisconceptionId values to split, so at most {groups:,} folds"),
    (["--folds", "2", "--only-folds", "-1"], "error: --only-folds -1: folds are 0..1"),
    (["--folds", "3", "--only-folds", "1,3"], "error: --only-folds 3: folds are 0..2"),
])
def test_evaluate_rejects_fold_flags_it_cannot_honour(tmp_path, data_dir, flags, message):
    report = tmp_path / "report"
    r = run_cli("pipelines.evaluate", "--data-dir", str(data_dir), "--report", str(report), "--reranker", "none",
                "--no-progress", *flags)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    pairs = load_eedi(data_dir).train_pairs
    assert r.stderr.strip().splitlines() == [message.format(rows=len(pairs),
                                                            groups=len({p.MisconceptionId for p in pairs}))]
    assert not report.exists()  # refused before anything ran


@pytest.mark.parametrize("folds", ["0", "1"])
def test_evaluate_says_folds_must_be_at_least_2(tmp_path, folds):
    r = run_cli("pipelines.evaluate", "--report", str(tmp_path / "report"), "--folds", folds)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("python -m pipelines.evaluate: error: argument --folds: must be at "
                                                 f"least 2 (one fold validates, the others train), got {folds}")
