"""Atomic writes (store.files): the whole new file or the old one, never a part, and no temp file left behind."""
from __future__ import annotations

import json
import os

import pytest

from store.files import folder_atomic, open_atomic, write_atomic, write_json_atomic


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_text_bytes_and_json(tmp_path):
    path = tmp_path / "a.txt"
    write_atomic(path, "first\n")
    write_atomic(path, "second\n")
    assert path.read_text() == "second\n"
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    write_json_atomic(tmp_path / "c.json", {"b": 1, "a": tmp_path})
    text = (tmp_path / "c.json").read_text()
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')  # sorted, indented, str() of a path
    assert json.loads(text) == {"a": str(tmp_path), "b": 1}
    write_json_atomic(tmp_path / "d.json", {"b": 1, "a": 2}, indent=None, sort_keys=False)
    assert (tmp_path / "d.json").read_text() == '{"b": 1, "a": 2}\n'
    assert not _leftovers(tmp_path)


def test_permissions_are_those_open_gives(tmp_path):
    write_atomic(tmp_path / "a", "x")
    (tmp_path / "b").write_text("x")
    assert (tmp_path / "a").stat().st_mode & 0o777 == (tmp_path / "b").stat().st_mode & 0o777


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with open_atomic(path, "w", encoding="utf-8", newline="") as f:
            f.write("half of the new")
            raise RuntimeError("killed half way")
    assert path.read_text() == "old\n" and not _leftovers(tmp_path)
    with pytest.raises(ValueError, match="mode"):
        with open_atomic(path, "a"):
            pass


def test_folder_atomic_keeps_a_folder_made_first_by_another_process(tmp_path):
    target = tmp_path / "cache" / "tokenizer"
    with folder_atomic(target) as tmp:
        (tmp / "a.json").write_text("{}")
    assert (target / "a.json").is_file()
    with folder_atomic(target) as tmp:  # the target exists by the time this one finishes
        (tmp / "b.json").write_text("{}")
    assert sorted(os.listdir(target)) == ["a.json"] and not _leftovers(target.parent)
    with pytest.raises(RuntimeError):
        with folder_atomic(tmp_path / "other") as tmp:
            raise RuntimeError("failed")
    assert not (tmp_path / "other").exists() and not _leftovers(tmp_path)
