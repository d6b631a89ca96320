"""Push a dataset-store version to a Hugging Face Hub dataset repository as one commit, tagged with its id.

- ``resolve_version``: the version to push (an id or ``latest``, chosen by ``store.versions``) and every
  usable version up to it;
- ``plan``: the commit's files (shards, each read in full first, version records, the misconception cards,
  the dataset card);
- ``check_access``: before a long run that ends in a push, the repository id, the token and the Hub's answer;
- ``push_version``: the push itself (create the repository, one commit, one tag).

Every failure is a one-line ``PublishError``.  A push is an explicit request to use the network: it is
made even when HF_HUB_OFFLINE is set.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from store.card import render_card
from store.store import CARDS_DIR, SPLITS, DatasetStore, StoreError, card_shards, check_shard
from store.versions import choose_versions, is_running, version_records

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_ENDPOINT = "https://huggingface.co"


class PublishError(Exception):
    """The push cannot be made (no token, Hub unreachable, refused). Message: one line."""


def resolve_token(token: str | None = None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN to a token with write access "
                           "(https://huggingface.co/settings/tokens)")
    return token


def endpoint_of(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def resolve_version(store: Path, spec: str) -> tuple[str, list[dict]]:
    """(version id, the records of every usable version up to and including it, oldest first).

    ``spec``: one version id, or ``latest`` (the newest version not running); chosen by
    ``store.versions``, like the trainers' ``--versions``.
    """
    spec = spec.strip()
    if spec == "all" or "," in spec:
        raise PublishError(f"--version {spec}: expected one version id or latest")
    try:
        records = version_records(store)
        chosen = choose_versions(records, spec, where=store, flag="--version", latest_needs_rows=False).records
    except StoreError as e:
        raise PublishError(str(e)) from None
    if not chosen:
        raise PublishError(f"{store}: no finished version to publish")
    version = chosen[0]["id"]
    ids = [r["id"] for r in records]
    upto = [r for r in records[: ids.index(version) + 1] if not is_running(r)]
    return version, upto


def plan(store: Path, version: str, records: list[dict]) -> dict[str, Path | bytes]:
    """path in the repository -> local file (or bytes, for the card).

    Every shard is read in full first (``store.check_shard``): a damaged one is refused before anything is
    pushed, as synth and train refuse it."""
    reader = DatasetStore(store)
    files: dict[str, Path | bytes] = {}
    shards: dict[str, list[str]] = {s: [] for s in SPLITS}
    for record in records:
        for split in SPLITS:
            for path in reader.shard_files(split, record["id"]):
                try:
                    check_shard(path)
                except StoreError as e:
                    raise PublishError(str(e)) from None
                files[f"data/{path.name}"] = path
                shards[split].append(f"data/{path.name}")
        files[f"versions/{record['id']}.json"] = store / "versions" / f"{record['id']}.json"
    cards = []  # the misconception cards (store.cards), all of them: they belong to no row version
    for path in card_shards(store):
        try:
            check_shard(path)
        except StoreError as e:
            raise PublishError(str(e)) from None
        files[f"{CARDS_DIR}/{path.name}"] = path
        cards.append(f"{CARDS_DIR}/{path.name}")
    for path in sorted((store / CARDS_DIR / "runs").glob("*.json")):
        files[f"{CARDS_DIR}/runs/{path.name}"] = path
    files["README.md"] = render_card(shards, records, cards).encode("utf-8")
    return files


@contextlib.contextmanager
def _network_allowed():
    """Lift huggingface_hub's offline mode for the duration of an explicit push."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's connection and protocol errors (huggingface_hub 2.x uses httpx2, 1.x httpx)."""
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        return (module.HTTPError,)
    return ()


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _hub_errors(url: str, repo_id: str):
    """The Hub's refusals and transport failures as one-line PublishErrors."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise PublishError(f"the Hub at {url} refused the push to {repo_id} (HTTP {status}): {_reason(e)}") from None
    except (*_transport_errors(), OSError) as e:
        raise PublishError(f"cannot reach the Hub at {url}: {_reason(e)}") from None
    except ValueError as e:  # huggingface_hub's checks of the server's answers and of README metadata
        raise PublishError(f"push to {repo_id} failed: {_reason(e)}") from None


def check_access(repo_id: str, endpoint: str | None = None, token: str | None = None) -> None:
    """Before a long run that ends in a push: the id is well formed, a token exists and the Hub accepts it."""
    from huggingface_hub import HfApi

    if not REPO_ID.match(repo_id):
        raise PublishError(f"--push-to-hub {repo_id!r}: expected a Hub repository id ORG/NAME")
    token = resolve_token(token)
    url = endpoint_of(endpoint)
    with _hub_errors(url, repo_id), _network_allowed():
        HfApi(endpoint=url, token=token).whoami()


def push_version(store: Path, version: str, repo_id: str, endpoint: str | None = None, token: str | None = None,
                 private: bool = False, log=print) -> dict:
    """Push ``version`` (an id or ``latest``) of ``store`` to the dataset repository ``repo_id``."""
    from huggingface_hub import CommitOperationAdd, HfApi

    store = Path(store)
    if not REPO_ID.match(repo_id):
        raise PublishError(f"{repo_id!r}: expected a Hub repository id ORG/NAME")
    version, records = resolve_version(store, version)
    files = plan(store, version, records)
    token = resolve_token(token)
    url = endpoint_of(endpoint)
    api = HfApi(endpoint=url, token=token)
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f) if isinstance(f, Path) else f)
                  for p, f in sorted(files.items())]
    log(f"publish: {version} of {store} -> {url}/datasets/{repo_id} ({len(operations)} files, "
        f"{len(records)} version(s) up to {version})")
    with _hub_errors(url, repo_id), _network_allowed():
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private or None)
        commit = api.create_commit(repo_id, operations, repo_type="dataset",
                                   commit_message=f"Add version {version}",
                                   commit_description=f"Dataset store version {version}, pushed by "
                                                      "misconception-factory pipelines.publish.")
        api.create_tag(repo_id, tag=version, revision=commit.oid, repo_type="dataset",
                       tag_message=f"Dataset store version {version}", exist_ok=True)
    log(f"publish: {repo_id} holds {version} at commit {commit.oid[:12]}, tagged {version}: {commit.commit_url}")
    return {"version": version, "commit": commit.oid, "url": commit.commit_url, "files": sorted(files)}
