"""Publishing store versions to the Hub, against a local server that speaks the Hub's endpoints (tests/fake_hub.py)."""
from __future__ import annotations

import io
import json
import time

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from store.hub import PublishError, push_version, resolve_version
from tests.conftest import run_cli
from tests.fake_hub import FakeHub
from tests.train_data import add_version, small_eedi


@pytest.fixture
def store(tmp_path, data_dir):
    eedi = small_eedi(data_dir, tmp_path / "eedi", questions=40, extra_misconceptions=10)
    root = tmp_path / "store"
    v1 = add_version(root, eedi, 0, 3)
    time.sleep(1.1)  # version ids carry their start second
    v2 = add_version(root, eedi, 10, 2)
    return root, v1, v2


def _card_shards(card: str) -> list[str]:
    return [line.strip()[2:] for line in card.splitlines() if line.strip().startswith("- data/")]


def test_push_is_one_tagged_commit_per_version_and_skips_files_already_there(store, tmp_path):
    root, v1, v2 = store
    with FakeHub() as hub:
        result = push_version(root, v1, "my-org/eedi-synth", endpoint=hub.url, token=hub.token, log=lambda _: None)
        repo = hub.repos["my-org/eedi-synth"]
        assert repo.repo_type == "dataset" and len(repo.commits) == 1
        first = repo.commits[0]
        assert first["oid"] == result["commit"] and repo.tags == {v1: first["oid"]}
        local = {f"data/{p.name}": p for p in (root / "data").glob(f"*-{v1}-*.parquet")}
        assert set(first["files"]) == {"README.md", f"versions/{v1}.json", *local}
        for path, file in local.items():
            assert repo.files[path] == file.read_bytes()
        assert json.loads(repo.files[f"versions/{v1}.json"])["id"] == v1
        card = repo.files["README.md"].decode()
        assert card.startswith("---\nconfigs:") and v1 in card and v2 not in card
        assert sorted(_card_shards(card)) == sorted(local)  # the card names exactly what was pushed

        # the next version, through the CLI: only its own files and the new card go in the commit
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
        cp = run_cli("pipelines.publish", "--store", str(root), "--repo", "my-org/eedi-synth", env=env)
        assert cp.returncode == 0, cp.stderr
        assert f"tagged {v2}" in cp.stdout
        second = repo.commits[1]
        assert all(v2 in f or f == "README.md" for f in second["files"]) and f"versions/{v2}.json" in second["files"]
        assert repo.tags[v2] == second["oid"] and repo.tags[v1] == first["oid"]
        posts = [path.split("/")[-2] if "/datasets/" in path else path for m, path in hub.requests if m == "POST"]
        assert posts == ["/api/repos/create", "/api/validate-yaml", "preupload", "commit", "tag"] * 2

    # what the Hub now holds is a dataset that `datasets` loads: every kept row of both versions
    snapshot = tmp_path / "snapshot"
    for path, content in repo.files.items():
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / path).write_bytes(content)
    train = load_dataset(str(snapshot), split="train")
    assert sorted(set(train["Version"])) == sorted([v1, v2]) and len(train) == 5
    rejected = pq.read_table(io.BytesIO(repo.files[next(f for f in repo.files if f.startswith("data/rejected-"))]))
    assert rejected.column("RejectStage").to_pylist() == ["judge"]


def _one_line_error(cp) -> str:
    assert cp.returncode == 2, (cp.stdout, cp.stderr)
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), cp.stderr
    return lines[0]


@pytest.mark.slow
def test_offline_missing_token_refused_and_bad_input_fail_in_one_line(store, tmp_path):
    root, v1, _ = store
    no_saved_token = {"HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": ""}
    base = ["pipelines.publish", "--store", str(root), "--repo", "org/name"]
    # no network: the default endpoint (huggingface.co) cannot be reached from here
    line = _one_line_error(run_cli(*base, env={"HF_TOKEN": "hf_x", "HF_ENDPOINT": ""}))
    assert "huggingface.co" in line
    line = _one_line_error(run_cli(*base, "--endpoint", "http://127.0.0.1:9", env={"HF_TOKEN": "hf_x"}))
    assert line.startswith("error: cannot reach the Hub at http://127.0.0.1:9")
    line = _one_line_error(run_cli(*base, env=no_saved_token))
    assert "no Hugging Face token: set HF_TOKEN" in line
    with FakeHub() as hub:
        line = _one_line_error(run_cli(*base, "--endpoint", hub.url, env={"HF_TOKEN": "hf_wrong"}))
        assert "refused" in line and "HTTP 401" in line and not hub.repos
    line = _one_line_error(run_cli(*base, "--version", "v1999", env={"HF_TOKEN": "hf_x"}))
    assert "--version v1999: no such version" in line
    line = _one_line_error(run_cli("pipelines.publish", "--store", str(tmp_path), "--repo", "org/name"))
    assert "not a dataset store" in line
    cp = run_cli("pipelines.publish", "--store", str(root), "--repo", "no-slash")
    assert cp.returncode == 2 and "expected a Hub repository id ORG/NAME" in cp.stderr
    with pytest.raises(PublishError, match="cannot reach"):
        push_version(root, v1, "org/name", endpoint="http://127.0.0.1:9", token="hf_x", log=lambda _: None)


def test_the_version_to_push_is_chosen_like_the_trainers_versions(store, tmp_path, data_dir):
    root, v1, v2 = store
    version, records = resolve_version(root, "latest")
    assert version == v2 and [r["id"] for r in records] == [v1, v2]  # the card declares every version up to it
    version, records = resolve_version(root, v1)
    assert version == v1 and [r["id"] for r in records] == [v1]
    for spec in ("all", f"{v1},{v2}"):
        with pytest.raises(PublishError, match=f"--version {spec}: expected one version id or latest"):
            resolve_version(root, spec)
    time.sleep(1.1)
    v3 = add_version(root, small_eedi(data_dir, tmp_path / "eedi3", questions=40, extra_misconceptions=10), 20, 1,
                     status="running")
    assert resolve_version(root, "latest")[0] == v2  # a running version is never pushed
    with pytest.raises(PublishError, match=f"--version {v3}: version is still running"):
        resolve_version(root, v3)
    empty = tmp_path / "empty-store"
    (empty / "versions").mkdir(parents=True)
    with pytest.raises(PublishError, match="no finished version to publish"):
        resolve_version(empty, "latest")


@pytest.mark.slow
def test_synth_push_to_hub_checks_repo_and_token_before_the_run(tmp_path):
    cp = run_cli("pipelines.synth", "--help")
    assert cp.returncode == 0 and "--push-to-hub ORG/NAME" in cp.stdout
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": ""}
    args = ["pipelines.synth", "--cluster", "6", "--store", str(tmp_path / "s"), "--data-dir", str(tmp_path / "none")]
    line = _one_line_error(run_cli(*args, "--push-to-hub", "org/name", env=env))
    assert "no Hugging Face token" in line
    line = _one_line_error(run_cli(*args, "--push-to-hub", "no-slash", env={"HF_TOKEN": "hf_x"}))
    assert "expected a Hub repository id ORG/NAME" in line
    # no network (nothing listens on port 9), even with HF_HUB_OFFLINE set: refused before the run
    offline = {"HF_TOKEN": "hf_x", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    line = _one_line_error(run_cli(*args, "--push-to-hub", "org/name", env=offline))
    assert "cannot reach the Hub at http://127.0.0.1:9" in line
    with FakeHub() as hub:
        line = _one_line_error(run_cli(*args, "--push-to-hub", "org/name",
                                       env={"HF_TOKEN": "hf_wrong", "HF_ENDPOINT": hub.url}))
        assert "refused" in line and "HTTP 401" in line
        # the right token: the check passes and the run starts (and stops at the missing data folder)
        line = _one_line_error(run_cli(*args, "--push-to-hub", "org/name",
                                       env={"HF_TOKEN": hub.token, "HF_ENDPOINT": hub.url}))
        assert "data folder not found" in line
    assert not (tmp_path / "s").exists()  # nothing ran


@pytest.mark.parametrize("damage", ["truncated", "garbage inside"])
def test_a_damaged_shard_is_refused_before_anything_is_pushed(store, damage):
    root, v1, v2 = store
    shard = sorted((root / "data").glob(f"train-{v1}-*.parquet"))[0]
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    else:  # the footer (schema) intact, the column data overwritten
        middle = len(data) // 3
        shard.write_bytes(data[:8] + b"\xff" * (middle - 8) + data[middle:])
    with FakeHub() as hub:
        line = _one_line_error(run_cli("pipelines.publish", "--store", str(root), "--repo", "my-org/eedi-synth",
                                       env={"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}))
        assert line.startswith(f"error: {shard}: damaged parquet shard (") and "move it out of data/" in line
        assert not hub.repos and not [r for r in hub.requests if r[0] == "POST"]  # nothing was sent

