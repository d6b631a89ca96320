"""python -m pipelines.synth end to end with the real embedded models: the default engine, kill and resume.

The pipeline starts llama.cpp's server itself here (the embedded default).
A run killed with SIGKILL and run again must finish every item exactly once,
replay the LLM answers it had already received, and end with the same kept
rows as an uninterrupted run over the same answers.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest

from factory import SynthConfig, prepare
from store import DatasetStore
from tests.conftest import REPO

pytestmark = pytest.mark.llm
CONTENT = ["ItemKey", "QuestionText", "CorrectAnswerText", "IncorrectAnswerText", "OtherAnswerTexts", "BaseQuestionId",
           "RoundTripRank", "Checks", "Rationale"]


@pytest.fixture(scope="session")
def small_cluster(data_dir):
    """The first cluster with 2 targets and real rows of its own (so its shots come from it)."""
    world = prepare(SynthConfig(data_dir=data_dir))
    targets = world.targets(1)
    for cid, members in world.clustering.members.items():
        mine = targets.intersection(members)
        if len(mine) == 2 and sum(world.real_rows[m] for m in members) >= 2:
            return cid, mine
    pytest.fail("no small cluster with targets")


def synth_command(data_dir, store, cluster, *extra):
    return [sys.executable, "-m", "pipelines.synth", "--cluster", str(cluster), "--store", str(store),
            "--data-dir", str(data_dir), "--no-progress", "--n-ctx", "3072", "--shots", "3", *extra]


def distractor_command(data_dir, store, targets_file, *extra):
    """The default mode (distractor) on the misconceptions listed in a file, one item a target (quick)."""
    return [sys.executable, "-m", "pipelines.synth", "--misconceptions", str(targets_file), "--store", str(store),
            "--data-dir", str(data_dir), "--no-progress", "--n-ctx", "3072", "--shots", "3", "--per-misconception", "1",
            *extra]


def journal_lines(store) -> int:
    journal = store / ".journal"
    return sum(f.read_text().count("\n") for f in journal.glob("*.jsonl")) if journal.is_dir() else 0


def cached_answers(store) -> int | None:
    """How many answers the run's request cache holds; None when it cannot be read right now (a reading of 0
    taken while the writer held the file would make the next good reading look like a new answer)."""
    path = store / ".cache" / "requests.sqlite"
    if not path.is_file():
        return 0
    try:
        with closing(sqlite3.connect(path, timeout=1)) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return None


def copy_database(source, target) -> None:
    """A consistent copy of a sqlite file, including what is still in its write-ahead log."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def rows(store, split="train"):
    s = DatasetStore.open(store)
    try:
        table = s.read(split, None)
        versions = s.versions()
    finally:
        s.close()
    return sorted(table.to_pylist(), key=lambda r: r["ItemKey"]), versions


def server_processes(parent: int | None = None) -> set[int]:
    """The llama.cpp servers running now (only those started by ``parent``, if given)."""
    found = set()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"llama_cpp.server" not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent is None or ppid == parent:
                found.add(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return found


def test_sigkill_then_rerun_ends_like_an_uninterrupted_run(tmp_path, data_dir, small_cluster):
    cluster, targets = small_cluster
    store = tmp_path / "killed"
    listed = tmp_path / "targets.txt"
    listed.write_text("# the small cluster's targets\n" + "\n".join(map(str, sorted(targets))) + "\n")
    # pick (an LLM check right after the writer) keeps each item open for a few seconds after its first answer, so the
    # kill lands while an answered item is not yet journalled (one answer an item would leave a window of ms)
    checks = ("--checks", "pick,round-trip")
    cmd = distractor_command(data_dir, store, listed, "--batch-size", "1", "--seed", "7", *checks)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # Kill once the first item is journalled and the second has at least one answer in the request cache.
    deadline, answers_at_first_item = time.monotonic() + 900, None
    while time.monotonic() < deadline and proc.poll() is None:
        first_item_done = answers_at_first_item is not None or journal_lines(store) >= 1
        answers = cached_answers(store) if first_item_done else None  # read after the journal: item 1's is in
        if answers is not None:
            if answers_at_first_item is None:
                answers_at_first_item = answers
            elif answers > answers_at_first_item:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stderr.read().decode()[-2000:]
    own_servers = server_processes(parent=proc.pid)  # not another run's: the check must hold beside other work
    assert own_servers, "the run's llama.cpp server was not found"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    assert not own_servers & server_processes(), "the killed run left its llama.cpp server running"

    resumed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    kept, versions = rows(store)
    rejected, _ = rows(store, "rejected")
    everything = kept + rejected
    assert len({r["QuestionId"] for r in everything}) == len(everything), "duplicate QuestionId"
    assert sorted(r["MisconceptionId"] for r in everything) == sorted(targets), "every item exactly once"
    assert sorted(v["status"] for v in versions) == ["complete", "interrupted"]
    last = max(versions, key=lambda v: v["started"])
    replayed = sum(u["replayed"] for u in last["usage"].values())
    assert replayed >= 1, "the answers received before the kill were not replayed"

    # An uninterrupted run over the same answers (a copy of the request cache) ends with the same rows.
    reference, answers = tmp_path / "reference", tmp_path / "answers.sqlite"
    copy_database(store / ".cache" / "requests.sqlite", answers)
    straight = subprocess.run(distractor_command(data_dir, reference, listed, "--seed", "7", *checks, "--request-cache",
                                                 str(answers)), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert straight.returncode == 0, straight.stderr[-3000:]
    ref_kept, ref_versions = rows(reference)
    ref_rejected, _ = rows(reference, "rejected")
    usage = ref_versions[0]["usage"]
    assert all(u["replayed"] == u["requests"] for u in usage.values()), usage  # no LLM call was needed
    pick = lambda rs: [{c: r[c] for c in CONTENT} for r in rs]  # noqa: E731
    assert pick(ref_kept) == pick(kept)
    assert [(r["ItemKey"], r["RejectStage"], r["RejectReason"]) for r in ref_rejected] == \
           [(r["ItemKey"], r["RejectStage"], r["RejectReason"]) for r in rejected]
    record = json.loads(next((reference / "versions").glob("*.json")).read_text())
    assert record["models"]["generator"]["weights_sha256"].startswith("1d9614638d18")
    assert record["models"]["generator"]["backend"] == "llama.cpp"
    assert [s["name"] for s in record["stages"]] == ["distract", "pick", "round-trip", "working", "repeat"]
    pairs = {p.QuestionId: p for p in prepare(SynthConfig(data_dir=data_dir)).data.train_pairs}
    for r in kept + rejected:  # distractor rows keep a real question and its correct answer
        base = pairs[r["BaseQuestionId"]]
        assert r["QuestionText"] == base.QuestionText and r["CorrectAnswerText"] == base.CorrectAnswerText
        assert r["Mode"] == "distractor" and r["ItemKey"].endswith(f"distractor={base.QuestionId}")
