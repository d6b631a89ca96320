"""Choosing store versions (store.versions), shared by pipelines.train / evaluate (--versions, --since) and pipelines.publish."""
from __future__ import annotations

import pytest

from store import StoreError
from store.versions import choose_versions, version_records


def _records() -> list[dict]:
    return [{"id": "v1", "status": "complete", "counts": {"kept": 3}},
            {"id": "v2", "status": "complete", "counts": {"kept": 2}},
            {"id": "v3", "status": "failed", "counts": {"kept": 0}},
            {"id": "v4", "status": "running", "counts": {"kept": 1}}]


def _ids(spec: str, since: str | None = None, **kw) -> list[str]:
    return choose_versions(_records(), spec, since, where="store", **kw).ids


def test_latest_all_ids_and_since():
    assert _ids("latest") == ["v2"]  # the newest usable version with kept rows
    assert _ids("latest", latest_needs_rows=False) == ["v3"]  # the newest usable version
    assert _ids("all") == ["v1", "v2", "v3"]
    assert _ids(" v2, v1,v2 ") == ["v2", "v1"]  # in the order given, each once
    assert _ids("all", since="v1") == ["v2", "v3"]
    assert _ids("latest", since="v2") == []
    choice = choose_versions(_records(), "all", where="store")
    assert choice.skipped_running == ["v4"]
    assert choose_versions([], "latest", where="store").ids == []


@pytest.mark.parametrize("spec, since, message", [
    ("nope", None, "--versions nope: no such version in store (versions: v1, v2, v3, v4)"),
    ("v1", "v1", "--versions v1: no such version after v1 in store (versions: v2, v3, v4)"),
    ("all", "v0", "--since v0: no such version in store (versions: v1, v2, v3, v4)"),
    ("v4", None, "--versions v4: version is still running"),
    (" , ", None, "--versions: expected latest, all or version ids separated by commas"),
])
def test_mistakes_are_one_line_errors_naming_the_flag(spec, since, message):
    with pytest.raises(StoreError) as e:
        choose_versions(_records(), spec, since, where="store")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_long_history_is_cut_in_the_message():
    records = [{"id": f"v{i:02d}", "status": "complete"} for i in range(30)]
    with pytest.raises(StoreError, match=r"\(versions: 30, newest v20, v21, .*, v29\)$"):
        choose_versions(records, "nope", where="store", flag="--version")


def test_records_are_read_from_a_store_folder(tmp_path):
    with pytest.raises(StoreError, match="store folder not found"):
        version_records(tmp_path / "missing")
    with pytest.raises(StoreError, match="not a dataset store"):
        version_records(tmp_path)
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "v2.json").write_text('{"id": "v2"}')
    (tmp_path / "versions" / "v1.json").write_text('{"id": "v1"}')
    assert [r["id"] for r in version_records(tmp_path)] == ["v1", "v2"]
