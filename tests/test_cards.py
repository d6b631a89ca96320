"""Misconception cards: the teacher's step (``generators.card``), the store's ``cards`` config (``store.cards``),
the retriever's documents (``rankers.documents``), and ``--cards`` in train, infer and evaluate."""
from __future__ import annotations

import json

import pytest

from generators.card import CardWriter, clean_card
from llm.parsing import ParseError
from rankers import ModelError
from rankers.documents import CARDS_FILE, documents, folder_cards, save_cards
from store import DatasetStore, StoreError
from store.cards import CardLog, card_key, read_card_table, read_cards, recover_cards
from tests.conftest import run_cli
from tests.test_infer_cli import small_data, write_synthetic_version  # noqa: F401 - a fixture

NAME = "Believes there are 100 degrees in a full turn"
GOOD = {"explanation": "In questions about turns and angles the pupil uses 100 degrees for a whole turn, as if "
                       "angles were percentages.",
        "example": "How many degrees are in a half turn? The pupil answers 50 (right: 180)."}


def card_row(mid: int, text: str, model: str = "m", prompt: str = "p", reject: str = "") -> dict:
    return {"MisconceptionId": mid, "MisconceptionName": f"name {mid}", "Card": "" if reject else text,
            "TeacherModel": model, "PromptVersion": prompt, "CardKey": card_key(mid, model, prompt), "Seed": 0,
            "Attempts": 1, "RejectReason": reject, "RawOutput": text if reject else ""}


def write_cards(store, cards: dict[int, str], model: str = "m") -> None:
    """Cards written as a card run writes them (the store's own writer, no LLM)."""
    s = DatasetStore.open(store)
    try:
        log = CardLog(store, {"model": {"name": model}})
        for mid, text in cards.items():
            log.append(card_row(mid, text, model))
        log.finish("complete")
        s.write_card()
    finally:
        s.close()


def test_a_card_is_the_explanation_then_the_worked_example():
    step = CardWriter()
    row = {"MisconceptionId": 2, "MisconceptionName": NAME, "Seed": 0}
    request = step.prompt(row)
    assert NAME in request.messages[-1][1] and request.json_schema and request.prompt_version == step.version
    card = step.parse(row, "Sure! " + json.dumps(GOOD))
    assert card == f"{GOOD['explanation']} Example: {GOOD['example']}"


@pytest.mark.parametrize("answer, reason", [
    ({"explanation": GOOD["explanation"]}, "invalid field: example"),
    ({**GOOD, "explanation": "Too short."}, "explanation too short"),
    ({**GOOD, "explanation": "x" * 400}, "explanation too long"),
    ({**GOOD, "example": "- 1. a list"}, "example is not prose"),
    ({**GOOD, "explanation": NAME + "."}, "only repeats the misconception's name"),
])
def test_a_card_that_does_not_fit_is_refused_with_its_reason(answer, reason):
    with pytest.raises(ParseError, match=reason):
        clean_card(answer.get("explanation"), answer.get("example"), NAME)


def test_cards_are_journalled_recovered_once_and_read_newest_first(tmp_path):
    store = tmp_path / "store"
    write_cards(store, {1: "card one", 2: "card two"}, model="old")
    # a killed run: two cards journalled, one of them a torn last line, no shard yet
    s = DatasetStore.open(store)
    log = CardLog(store, {"model": {"name": "new"}}, flush_every=100)
    log.append(card_row(1, "newer card one", "new"))
    log.append(card_row(3, "unparsable answer", "new", reject="no JSON object in output"))
    with pytest.raises(StoreError, match="already in the store"):
        log.append(card_row(1, "again", "new"))
    log._journal.write('{"MisconceptionId": 4, "Card')  # torn by the kill
    log._journal.close()
    s.close()
    assert recover_cards(store) == 2 and recover_cards(store) == 0  # once, and never twice
    table = read_card_table(store).to_pylist()
    assert sorted(r["CardKey"] for r in table) == ["1:new:p", "1:old:p", "2:old:p", "3:new:p"]
    runs = [json.loads(p.read_text()) for p in (store / "cards" / "runs").glob("*.json")]
    assert {r["model"]["name"]: r["status"] for r in runs} == {"old": "complete", "new": "interrupted"}
    cards, source = read_cards(store)
    assert cards == {1: "newer card one", 2: "card two"}  # the newest card of each; the reject is skipped
    assert source["cards"] == 2 and source["sources"] == {"new (prompt p)": 1, "old (prompt p)": 1}
    assert read_cards(store, model="old")[0] == {1: "card one", 2: "card two"}


def test_the_cards_are_a_config_of_the_dataset_repository(tmp_path):
    from datasets import load_dataset

    store = tmp_path / "store"
    write_cards(store, {5: "card five", 7: "card seven"})
    assert "config_name: cards" in (store / "README.md").read_text()
    rows = load_dataset(str(store), "cards", split="train")
    assert sorted(rows["MisconceptionId"]) == [5, 7] and set(rows["TeacherModel"]) == {"m"}


def test_a_store_without_cards_is_a_one_line_error(tmp_path):
    with pytest.raises(StoreError, match="no misconception cards .*--misconception-cards"):
        read_cards(tmp_path)


def test_documents_append_the_card_and_a_folder_keeps_its_cards(tmp_path):
    docs = documents({1: "Name one ", 2: "Name two"}, {1: "Its card."})
    assert docs == {1: "Name one\nIts card.", 2: "Name two"}
    assert folder_cards(tmp_path) == (None, None)
    save_cards(tmp_path, {1: "Its card."}, {"store": "s"})
    assert folder_cards(tmp_path) == ({1: "Its card."}, {"store": "s"})
    (tmp_path / CARDS_FILE).write_text("{not json")
    with pytest.raises(ModelError, match=CARDS_FILE):
        folder_cards(tmp_path)


def test_synth_card_flags_are_checked(tmp_path, data_dir):
    r = run_cli("pipelines.synth", "--misconception-cards", "--cluster", "3", "--store", str(tmp_path / "s"),
                "--data-dir", str(data_dir))
    assert r.returncode == 2 and "not --cluster" in r.stderr.strip().splitlines()[-1]
    r = run_cli("pipelines.synth", "--misconception-cards", "--misconception", "999999", "--store",
                str(tmp_path / "s"), "--data-dir", str(data_dir), "--model", "no-such-model")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"error: misconception 999999 is not in {data_dir}/"
                                                 "misconception_mapping.csv")


@pytest.mark.llm
def test_synth_writes_cards_with_the_embedded_teacher_and_resumes(tmp_path, data_dir):
    store = tmp_path / "store"
    args = ["pipelines.synth", "--misconception-cards", "--misconception", "2", "--misconception", "9",
            "--store", str(store), "--data-dir", str(data_dir), "--no-progress"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "card run c" in r.stdout and "cards/hour" in r.stdout
    rows = read_card_table(store).to_pylist()
    assert sorted(r["MisconceptionId"] for r in rows) == [2, 9]
    for row in rows:  # kept with a card, or rejected with the reason and the raw answer
        assert row["TeacherModel"].startswith("Qwen2.5-Coder-0.5B") and row["PromptVersion"] == CardWriter().version
        assert (row["Card"] and not row["RejectReason"]) or (row["RejectReason"] and not row["Card"])
    again = run_cli(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]
    assert len(read_card_table(store)) == 2
    # a killed run left card 5 in its journal, not yet in a shard: the next run stores it and does not make it again
    model, version = rows[0]["TeacherModel"], rows[0]["PromptVersion"]
    s = DatasetStore.open(store)
    log = CardLog(store, {"model": {"name": model}})
    log.append({"MisconceptionId": 5, "MisconceptionName": "five", "Card": "a card of the killed run",
                "TeacherModel": model, "PromptVersion": version, "CardKey": card_key(5, model, version), "Seed": 0,
                "Attempts": 1, "RejectReason": "", "RawOutput": ""})
    log._journal.close()
    s.close()
    resumed = run_cli(*args, "--misconception", "5")
    assert resumed.returncode == 0 and "nothing to do" in resumed.stdout, resumed.stderr[-2000:]
    assert len(read_card_table(store)) == 3 and read_cards(store)[0][5] == "a card of the killed run"


@pytest.mark.training
def test_train_infer_and_evaluate_use_the_cards(tmp_path, data_dir, small_data):  # noqa: F811
    from eedi import load_eedi
    from eedi.splits import FoldSpec

    data = load_eedi(small_data)
    cards_store = tmp_path / "cards"
    write_cards(cards_store, {m: f"A card about {name.lower()}." for m, name in data.misconceptions.items()})
    out = tmp_path / "run"
    r = run_cli("pipelines.train", "--data-dir", str(small_data), "--cards", str(cards_store), "--out", str(out),
                "--max-steps", "2", "--batch-size", "8", "--hard-negatives", "1", "--skip-reranker", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"documents: misconception names with {len(data.misconceptions)} cards" in r.stdout
    card = json.loads((out / "retriever" / "training_card.json").read_text())
    assert card["documents"]["cards"]["cards"] == len(data.misconceptions)
    assert "misconception cards" in (out / "retriever" / "README.md").read_text()
    assert folder_cards(out / "retriever")[0] == read_cards(cards_store)[0]
    # infer ranks against the same documents, from the folder alone
    sub = tmp_path / "submission.csv"
    r = run_cli("pipelines.infer", "--data-dir", str(small_data), "--questions", str(data_dir / "test.csv"),
                "--out", str(sub), "--reranker", "none", "--retriever", str(out / "retriever"), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"names with the {len(data.misconceptions)} misconception cards it was trained with" in r.stdout
    # evaluate: every condition with and without the cards, and what the cards add
    store = tmp_path / "store"
    write_synthetic_version(store, data, FoldSpec("MisconceptionId", 2, 0, 0), 10)
    report = tmp_path / "report"
    r = run_cli("pipelines.evaluate", "--data-dir", str(small_data), "--store", str(store), "--pooled",
                "--cards", str(cards_store), "--report", str(report), "--folds", "2", "--only-folds", "0",
                "--schemes", "misconception", "--max-steps", "2", "--hard-negatives", "0", "--reranker", "none",
                "--unseen-boost", "1", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads((report / "results.json").read_text())["runs"]
    assert {x["condition"] for x in runs} == {"zero-shot", "real", "real+synthetic", "zero-shot+cards",
                                             "real+cards", "real+synthetic+cards"}
    text = (report / "report.md").read_text()
    assert "## Misconception cards" in text and "real+cards − real," in text
    assert "real+synthetic+cards − real+cards," in text and "zero-shot+cards − zero-shot," in text
    r = run_cli("pipelines.train", "--data-dir", str(small_data), "--cards", str(tmp_path / "none"),
                "--out", str(tmp_path / "run2"), "--skip-reranker", "--no-progress")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --cards: ")
