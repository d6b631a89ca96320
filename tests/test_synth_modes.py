"""pipelines.synth's modes, checks and targeting, end to end with the embedded model; and its one-line errors.

The LLM tests share one small target set: two misconceptions of the small cluster, written to a
--misconceptions file. Every check must show up in the summary, the version record, the card and the
rows it passed or rejected.
"""
from collections import Counter

import pandas as pd
import pytest

import factory
from eedi.answers import same_answer
from factory import SynthConfig, prepare, run
from store import DatasetStore
from tests.conftest import run_cli
from tests.test_end_to_end import small_cluster  # noqa: F401 - a fixture

SMALL = ["--no-progress", "--n-ctx", "3072", "--shots", "2", "--per-misconception", "1"]  # one item a target: quick


def synth(data_dir, store, *args, timeout=1200):
    return run_cli("pipelines.synth", "--store", str(store), "--data-dir", str(data_dir), *SMALL, *args,
                   timeout=timeout)


def stored(store):
    s = DatasetStore.open(store)
    try:
        return s.read("train").to_pylist(), s.read("rejected").to_pylist(), s.versions()
    finally:
        s.close()


@pytest.fixture
def targets_file(tmp_path, small_cluster):  # noqa: F811
    _, targets = small_cluster
    path = tmp_path / "targets.txt"
    path.write_text("# two targets\n" + "\n".join(f"{m}  # target" for m in sorted(targets)) + "\n\n")
    return path


# ---------- one-line errors, no LLM ----------

@pytest.mark.parametrize("args, message", [
    (["--misconception", "999999"], "error: misconception 999999 is not in misconception_mapping.csv"),
    (["--cluster", "all", "--folds", "1", "--hide-fold", "0"],
     "argument --folds: must be at least 2 (one fold validates, the others train), got 1"),
    (["--cluster", "all", "--checks", "none,pick"], "'none' (no check) cannot be combined with other checks"),
    (["--cluster", "all", "--near-duplicate", "-1"], "argument --near-duplicate: must be in [0, 1], got -1"),
    (["--cluster", "all", "--near-duplicate", "2"], "argument --near-duplicate: must be in [0, 1], got 2"),
    (["--cluster", "all", "--max-retries", "-1"], "argument --max-retries: must be 0 or more, got -1"),
    (["--cluster", "all", "--min-score", "11"], "argument --min-score: must be in [0, 10] (the judge scores 0-10)"),
    (["--cluster", "all", "--attach-threshold", "5"],
     "argument --attach-threshold: must be in [-1, 1] (a cosine similarity), got 5"),
    (["--cluster", "all", "--request-timeout", "0"], "argument --request-timeout: must be at least 1 (seconds), got 0"),
    (["--cluster", "all", "--n-ctx", "10"],
     "argument --n-ctx: must be at least 1024 (a prompt and its answer must fit), got 10"),
    (["--cluster", "all", "--engine", "embedded", "--base-url", "http://127.0.0.1:9/v1"],
     "--engine embedded starts its own llama.cpp server"),
    (["--cluster", "all", "--mode", "distractor", "--checks", "solve"], "--checks solve reads a correct answer the LLM wrote, which --mode distractor rows do not have"),
    (["--cluster", "all", "--checks", "pick,vibes"], "unknown check 'vibes'"),
    (["--cluster", "all", "--pick-candidates", "mixed+closest"], "--pick-candidates: candidates must be one of"),
    (["--cluster", "all", "--model", "gpt-17"], "error: model 'gpt-17'"),
    (["--cluster", "all", "--ray-workers", "2"], "--ray-address and --ray-workers are for --executor ray"),
    (["--cluster", "all", "--mode", "pairing", "--answers", "2"], "--answers 2 is for --mode distractor"),
    (["--cluster", "all", "--mode", "pairing", "--rationale", "teacher"], "--rationale teacher is for --mode distractor"),
    (["--cluster", "all", "--answers", "9"], "argument --answers: must be in [1, 8]"),
    (["--cluster", "all", "--executor", "ray", "--ray-address", "127.0.0.1:1"],
     "error: --ray-address 127.0.0.1:1: cannot connect to Ray"),
])
@pytest.mark.slow
def test_bad_choices_are_one_line_errors(tmp_path, data_dir, args, message):
    result = synth(data_dir, tmp_path / "s", *args, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "rows made so far" not in result.stderr  # nothing was made: no promise of kept rows


@pytest.mark.slow
def test_a_check_of_ones_own_brings_its_flag_and_a_bad_one_is_one_line(tmp_path, data_dir):
    from tests.conftest import run_cli

    plugin = "tests.answer_length_check:AnswerLength"
    shown = run_cli("pipelines.synth", "--checks", plugin, "--help")
    assert shown.returncode == 0 and "--answer-length-max N" in shown.stdout and "--round-trip-top-k" in shown.stdout
    for spec, message in (("tests.answer_length_check:Nothing", "cannot import 'Nothing'"),
                          ("no_such_module:Check", "cannot import 'Check' from 'no_such_module'"),
                          ("tests.conftest:run_cli", "is not a llm.stage.Stage subclass")):
        bad = synth(data_dir, tmp_path / "s", "--cluster", "all", "--checks", spec, timeout=120)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    off = synth(data_dir, tmp_path / "s", "--cluster", "all", "--checks", plugin, "--answer-length-max", "0",
                timeout=120)
    assert off.returncode == 2 and "--answer-length-max: must be at least 1, got 0" in off.stderr, off.stderr
    old = synth(data_dir, tmp_path / "s", "--cluster", "all", "--consistency-top-k", "0", timeout=120)
    assert old.returncode == 2 and "must be at least 1" in old.stderr  # the old spelling still works


def test_a_check_runs_on_every_mode_whose_rows_carry_what_it_reads():
    """A check names what it reads (``needs``), a mode what its rows carry: a new mode needs no edit in judges/."""
    from factory.modes import MODES, Mode
    from judges import PickMisconception, RoundTrip, RubricJudge, Solver

    new = Mode("new-answers", "a new wrong answer, some other way", checks=(), per_misconception=1, bases=True,
               wrong_answer=True, before=lambda c: [], after=lambda c: [])
    assert [new.lacks(c) for c in (PickMisconception, RubricJudge, RoundTrip)] == [None, None, None]
    assert new.lacks(Solver) == ("--checks solve reads a correct answer the LLM wrote, which --mode new-answers rows "
                                 "do not have")
    assert MODES["pairing"].lacks(PickMisconception) == ("--checks pick reads a wrong answer to judge, which --mode "
                                                         "pairing rows do not have")
    assert MODES["question"].lacks(Solver) is None and MODES["pairing"].lacks(RoundTrip) is None


@pytest.mark.slow
def test_bad_misconception_file_and_unwritable_store_are_one_line_errors(tmp_path, data_dir):
    bad = tmp_path / "ids.txt"
    bad.write_text("12\nforty\n")
    result = synth(data_dir, tmp_path / "s", "--misconceptions", str(bad), timeout=120)
    assert result.returncode == 2 and f"{bad}: line 2: expected a MisconceptionId, got 'forty'" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = synth(data_dir, blocker / "store", "--cluster", "all", timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_damaged_request_cache_is_refused_in_one_line_before_any_llm_call(tmp_path, data_dir):
    from tests.test_cache import filled_cache

    cache = filled_cache(tmp_path / "requests.sqlite")
    data = bytearray(cache.read_bytes())
    data[20 * 4096:24 * 4096] = b"\xa5" * (4 * 4096)  # a damaged page behind an intact header
    cache.write_bytes(bytes(data))
    result = synth(data_dir, tmp_path / "s", "--cluster", "all", "--limit", "1", "--request-cache", str(cache),
                   timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: request cache {cache}: damaged ("), result.stderr
    assert "move the file aside" in lines[0] and "--no-request-cache" in lines[0]
    assert "rows made so far" not in lines[0]  # refused before the run: no version was started
    assert not list((tmp_path / "s" / "versions").glob("*.json"))


@pytest.mark.slow
def test_list_clusters_escapes_tabs_and_newlines_in_names(tmp_path, data_dir):
    from tests.train_data import small_eedi

    eedi = small_eedi(data_dir, tmp_path / "eedi", questions=30, extra_misconceptions=20)
    mapping = eedi / "misconception_mapping.csv"
    table = pd.read_csv(mapping, dtype=str, keep_default_na=False)
    table.loc[0, "MisconceptionName"] = "Thinks a\tb\nis one line"
    table.to_csv(mapping, index=False)
    result = run_cli("pipelines.synth", "--list-clusters", "--data-dir", str(eedi), "--no-progress", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = lines.index("cluster\tsize\treal_rows\ttargets\tnames")
    assert all(len(line.split("\t")) == 5 for line in lines[header:]), result.stdout
    assert "Thinks a\\tb\\nis one line" in result.stdout


def test_listed_misconceptions_that_are_not_targets_are_skipped_with_a_warning(data_dir):
    world = prepare(SynthConfig(data_dir=data_dir))
    seen = next(m for m, n in world.real_rows.items() if n > 0)
    target = min(world.targets(1))
    import io

    err = io.StringIO()
    chosen = world.chosen_targets(SynthConfig(data_dir=data_dir, misconceptions=[target, seen, target]), err)
    assert chosen == {target}
    assert f"1 of 2 listed misconceptions are not targets" in err.getvalue() and str(seen) in err.getvalue()
    with pytest.raises(factory.ConfigError, match="none of the 1 listed misconceptions is a target"):
        world.chosen_targets(SynthConfig(data_dir=data_dir, misconceptions=[seen]), io.StringIO())


@pytest.mark.slow
def test_distractor_bases_fit_and_avoid_the_hidden_fold(data_dir):
    from eedi.splits import FoldSpec

    fold = FoldSpec("MisconceptionId", 10, 0, 0)
    config = SynthConfig(data_dir=data_dir, hide_fold=fold, per_misconception=3, mode="distractor")
    world = prepare(config)
    targets = factory.plan(world, config, world.chosen_targets(config))
    assert targets and all(t.base is not None for t in targets)
    assert not {t.base.QuestionId for t in targets} & world.hidden_questions
    by_target: dict[int, list[str]] = {}
    for t in targets:
        by_target.setdefault(t.misconception_id, []).append(t.base.QuestionId)
    assert all(len(set(q)) == len(q) <= 3 for q in by_target.values())  # distinct bases per target
    default = SynthConfig(data_dir=data_dir, hide_fold=fold)  # the defaults: two bases a target, one new question
    assert default.effective_per_misconception() == 2 and default.as_record()["per_misconception"] == 2
    two = Counter(t.misconception_id for t in factory.plan(world, default, world.chosen_targets(default)))
    assert set(two) == set(by_target) and max(two.values()) == 2
    assert SynthConfig(data_dir=data_dir, mode="question").effective_per_misconception() == 1
    from generators.distractor import closed_question

    closed = [closed_question(t.base) for t in targets]  # words-or-pictures answers: bases of last resort
    assert sum(closed) < 0.05 * len(closed)


# ---------- with the embedded LLM ----------

@pytest.mark.llm
def test_distractor_rows_checks_rejudging_and_a_new_check(tmp_path, data_dir, targets_file, small_cluster):  # noqa: F811
    store = tmp_path / "store"
    targets = ["--misconceptions", str(targets_file)]
    first = synth(data_dir, store, *targets, "--checks", "none")
    assert first.returncode == 0, first.stderr[-3000:]
    again = synth(data_dir, store, *targets, "--checks", "none")
    assert again.returncode == 0 and "nothing to do" in again.stdout

    # other check settings: the same items are judged again, their generator answers replayed
    result = synth(data_dir, store, *targets, "--checks", "round-trip,pick", "--round-trip-top-k", "400",
                   "--pick-threshold", "0.01")  # lenient thresholds: kept rows to read; the rules are unit-tested
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 planned items are in" in result.stderr and "judged again" in result.stderr
    assert "distract " in result.stdout and "round-trip " in result.stdout and "pick " in result.stdout
    kept, rejected, versions = stored(store)
    latest = max(versions, key=lambda v: v["started"])
    assert latest["usage"]["distract"]["replayed"] == latest["usage"]["distract"]["requests"]  # no new LLM call
    everything = kept + rejected
    assert len({r["QuestionId"] for r in everything}) == len(everything) == 4
    assert len({r["ChecksKey"] for r in everything}) == 2
    kept = [r for r in kept if r["Version"] == latest["id"]]
    rejected = [r for r in rejected if r["Version"] == latest["id"]]
    assert len({r["ItemKey"] for r in kept + rejected}) == 2

    pairs = {p.QuestionId: p for p in prepare(SynthConfig(data_dir=data_dir)).data.train_pairs}
    for r in kept:  # a distractor row keeps a real question, its correct answer and its options
        base = pairs[r["BaseQuestionId"]]
        assert (r["QuestionText"], r["CorrectAnswerText"]) == (base.QuestionText, base.CorrectAnswerText)
        assert sorted(r["OtherAnswerTexts"]) == sorted([base.IncorrectAnswerText, *base.OtherAnswerTexts])
        options = [r["CorrectAnswerText"], *r["OtherAnswerTexts"]]
        assert not any(same_answer(r["IncorrectAnswerText"], o) for o in options)
        assert r["Checks"] == ["round-trip", "pick", "repeat"] and r["Rationale"] == r["PupilWorking"]
        # the default pick rules (mixed+retrieved-mixed) show the target and 2 x 4 others, some shared
        assert 1 <= r["PickRank"] <= 9 and 0 <= r["PickProbability"] <= 1 and r["RoundTripRank"] <= 400
    for r in rejected:
        assert r["RejectStage"] in ("distract", "rules", "round-trip", "pick", "repeat") and r["RejectReason"]
    stages = {s["name"]: s for s in latest["stages"]}
    assert list(stages) == ["distract", "round-trip", "pick", "working", "repeat"]
    assert stages["distract"]["in"] == 2 and stages["pick"]["in"] == stages["round-trip"]["passed"]
    assert stages["repeat"]["passed"] == len(kept) == latest["counts"]["kept"]
    card = (store / "README.md").read_text()
    assert "## Stages and checks" in card and "| pick |" in card

    # a check of the user's own, added on the command line: its flag, column and counts follow
    result = synth(data_dir, store, *targets, "--checks", "tests.answer_length_check:AnswerLength",
                   "--answer-length-max", "500")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "answer-length " in result.stdout
    kept, _, versions = stored(store)
    record = max(versions, key=lambda v: v["started"])
    assert [s["name"] for s in record["stages"]][1] == "answer-length"
    assert record["stages"][1]["settings"] == {"max_chars": 500}
    assert record["usage"]["distract"]["replayed"] == record["usage"]["distract"]["requests"]
    new = [r for r in kept if r["Version"] == record["id"]]
    assert all(r["AnswerLength"] == len(r["IncorrectAnswerText"]) and "answer-length" in r["Checks"] for r in new)
    assert record["stages"][1]["in"] == record["stages"][0]["passed"]

    # the solve-first writer: its own items beside the direct writer's, its own prompt recorded
    result = synth(data_dir, store, *targets, "--writer", "solve-first", "--checks", "none")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to do" not in result.stdout and "distract_solve " in result.stdout
    kept, rejected, versions = stored(store)
    record = max(versions, key=lambda v: v["started"])
    assert record["config"]["writer"] == "solve-first" and "distract_solve" in record["prompt_versions"]
    new = [r for r in kept + rejected if r["Version"] == record["id"]]
    assert len(new) == 2 and all(r["ItemKey"].endswith(":writer=solve-first") for r in new)

    # best of 3: the writer draws 3 answers an item, the pick judge chooses; the pick check re-asks nothing
    result = synth(data_dir, store, *targets, "--answers", "3", "--checks", "pick", "--pick-threshold", "0.01")
    assert result.returncode == 0, result.stderr[-3000:]
    kept, rejected, versions = stored(store)
    record = max(versions, key=lambda v: v["started"])
    assert [s["name"] for s in record["stages"]] == ["distract", "choose", "pick", "working", "repeat"]
    assert record["config"]["answers"] == 3 and record["usage"]["distract"]["requests"] >= 3 * 2
    new = [r for r in kept + rejected if r["Version"] == record["id"]]
    assert len(new) == 2 and all(r["ItemKey"].endswith(":writer=direct+best-of-3") for r in new)
    chosen = [r for r in new if len(r["CandidateAnswers"] or []) > 1]
    for r in new:
        if r["CandidateAnswers"]:
            assert r["IncorrectAnswerText"] in r["CandidateAnswers"]
            assert r["PupilWorking"] == r["CandidateWorkings"][r["CandidateAnswers"].index(r["IncorrectAnswerText"])]
    assert record["usage"]["choose"]["requests"] == 4 * sum(len(r["CandidateAnswers"]) for r in chosen)
    assert record["usage"]["pick"]["replayed"] >= 4 * len(chosen)  # the chosen answer's prompts, answered by choose


@pytest.mark.slow
def test_the_solve_first_writer_shows_the_correct_answer_and_keeps_the_pupils_working(data_dir):
    from generators.distractor import DistractorWriter, SolveFirstWriter
    from llm.parsing import ParseError

    config = SynthConfig(data_dir=data_dir, mode="distractor", writer="solve-first", misconceptions=None)
    world = prepare(config)
    target = factory.plan(world, config, world.chosen_targets(config))[0]
    direct, solve = DistractorWriter().prompt(target), SolveFirstWriter().prompt(target)
    correct = f"Correct answer: {target.base.CorrectAnswerText}"
    assert correct in solve.messages[-1][1] and correct not in direct.messages[-1][1]
    assert set(solve.json_schema["required"]) == {"solution", "pupil_working", "answer"}
    d = SolveFirstWriter().parse(target, '{"solution": "3 x 4 = 12", "pupil_working": "3 + 4 = 7", "answer": "7"}')
    assert (d.working, d.answer) == ("3 + 4 = 7", "7")
    with pytest.raises(ParseError, match="answer"):
        SolveFirstWriter().parse(target, '{"solution": "12", "pupil_working": "adds", "answer": ""}')
    assert factory.item_key(target, "m", None, config.key_tag()).endswith(":writer=solve-first")
    assert config.key_tag() == "writer=solve-first" and SynthConfig(data_dir=data_dir).key_tag() == ""
    assert SynthConfig(data_dir=data_dir, answers=4).key_tag() == "writer=direct+best-of-4"
    assert SynthConfig(data_dir=data_dir, mode="pairing", answers=4).key_tag() == ""
    assert SynthConfig(data_dir=data_dir, mode="a-new-mode").key_tag() == "mode=a-new-mode"  # never a distractor's key
