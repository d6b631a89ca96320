import json

import pytest
from datasets import load_dataset

from store import DatasetStore, StoreError, schema_with

REQUIRED = ["QuestionId", "SubjectName", "ConstructName", "QuestionText", "CorrectAnswerText",
            "IncorrectAnswerText", "OtherAnswerTexts", "MisconceptionId", "MisconceptionName", "ClusterId",
            "JudgeScore", "JudgeReason", "Rationale", "GeneratorModel", "JudgeModel", "TeacherModel",
            "PromptVersion", "Version"]
STAGE_COLUMNS = {"JudgeScore": "float64", "JudgeReason": "string"}  # what a stage adds to the base schema


def row(version, i, **extra):
    return {"QuestionId": f"syn-{version}-{i}", "ItemKey": f"{i}:0:1:m", "QuestionText": f"q{i}",
            "MisconceptionId": i, "ClusterId": 0, "OtherAnswerTexts": ["a", "b"], "ShotIds": [],
            "JudgeScore": 9.0, "Version": version, "RejectStage": "", "RejectReason": "", **extra}


def test_versions_add_shards_and_load_with_datasets(tmp_path):
    store = DatasetStore.open(tmp_path / "s", STAGE_COLUMNS)
    w = store.new_version({"config": {"x": 1}}, flush_every=2)
    for i in range(5):
        w.append("train", row(w.version, i))
    w.append("rejected", row(w.version, 9, RejectStage="judge", RejectReason="score below 7: 3"))
    record = w.finish()
    assert record["counts"] == {"kept": 5, "rejected": 1, "rejected_by_reason": {"judge: score below 7": 1}}
    first_shards = sorted(p.name for p in store.shard_files())
    assert len(store.shard_files("train")) == 3  # 2 + 2 + 1
    assert len(load_dataset(str(tmp_path / "s"), split="train")) == 5
    w2 = store.new_version({})
    w2.append("train", row(w2.version, 1))
    w2.finish()
    store.close()
    assert set(first_shards) <= {p.name for p in store.shard_files()}  # earlier shards untouched
    train = load_dataset(str(tmp_path / "s"), split="train")  # sees the new version, not a stale cache
    assert set(REQUIRED) <= set(train.column_names) and set(train.column_names) == set(schema_with(STAGE_COLUMNS).names)
    assert len(train) == 6 and len(set(train["QuestionId"])) == 6
    assert sorted(set(train["Version"])) == sorted([w.version, w2.version])
    rejected = load_dataset(str(tmp_path / "s"), split="rejected")
    assert rejected["RejectReason"] == ["score below 7: 3"]
    card = (tmp_path / "s" / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and w2.version in card


def test_recovery_after_kill_never_duplicates(tmp_path):
    store = DatasetStore.open(tmp_path / "s")
    w = store.new_version({}, flush_every=100)
    for i in range(3):
        w.append("train", row(w.version, i))
    # Simulate a kill between a shard's rename and the journal's truncation:
    w.store._flush_rows(w.version, {"train": [row(w.version, 0)]}, set())
    with open(w.journal_path, "a") as f:  # and a torn last line
        f.write('{"split": "train", "row": {"QuestionId": "syn-')
    store.close()  # the process "dies": no finish()

    store = DatasetStore.open(tmp_path / "s")
    keys, qids = store.stored_keys()
    assert qids == {f"syn-{w.version}-{i}" for i in range(3)}
    table = store.read("train")
    assert table.num_rows == 3
    record = json.loads((tmp_path / "s" / "versions" / f"{w.version}.json").read_text())
    assert record["status"] == "interrupted" and record["counts"]["kept"] == 3
    assert not list((tmp_path / "s" / ".journal").iterdir())
    store.close()


def test_store_is_locked_while_a_run_writes(tmp_path):
    store = DatasetStore.open(tmp_path / "s")
    with pytest.raises(StoreError, match="in use by another run"):
        DatasetStore.open(tmp_path / "s")
    store.close()
    DatasetStore.open(tmp_path / "s").close()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a dataset store"):
        DatasetStore.open(tmp_path / "t")


def test_a_failed_shard_write_marks_the_version_failed_and_keeps_its_rows(tmp_path, monkeypatch):
    import store.store as module

    store = DatasetStore.open(tmp_path / "s")
    w = store.new_version({}, flush_every=2)
    w.append("train", row(w.version, 0))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module.pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        w.append("train", row(w.version, 1))  # the second row fills the shard: its write fails
    path = tmp_path / "s" / "versions" / f"{w.version}.json"
    record = json.loads(path.read_text())
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    assert w.finish("failed", seconds=1.0)["status"] == "failed"  # what the factory's cleanup calls: no second error
    assert json.loads(path.read_text())["seconds"] == 1.0
    store.close()
    monkeypatch.undo()
    store = DatasetStore.open(tmp_path / "s")  # the journal's rows become shards; the version stays failed
    record = json.loads(path.read_text())
    assert record["status"] == "failed" and record["counts"]["kept"] == 2 and store.read("train").num_rows == 2
    store.close()


def test_a_store_without_rejects_declares_only_the_train_split(tmp_path):
    """`datasets` (5.2) cannot load a declared split that has no rows ("Instruction 'rejected' corresponds to no
    data!", huggingface/datasets#8401), and that error breaks ``load_dataset(store)`` for every split; so an empty
    split is left out of the card, and ``split="rejected"`` is "Unknown split" until a version rejects an item."""
    root = tmp_path / "s"
    store = DatasetStore.open(root, STAGE_COLUMNS)
    w = store.new_version({})
    w.append("train", row(w.version, 0))
    w.finish()
    store.close()
    assert list(load_dataset(str(root))) == ["train"] and len(load_dataset(str(root), split="train")) == 1
