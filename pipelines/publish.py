"""python -m pipelines.publish: push a dataset-store version to the Hugging Face Hub as one commit, tagged with its id.

Examples:
  python -m pipelines.publish --store synth-store --repo my-org/eedi-synthetic
  python -m pipelines.publish --store synth-store --version v20261121-195016-525e --repo my-org/eedi-synthetic
  python -m pipelines.synth --cluster 6 --push-to-hub my-org/eedi-synthetic   (pushes the run's version)

One commit holds the version's shards (train and rejected), its record
versions/<id>.json and a dataset card (README.md) that declares exactly the shards of
the versions up to and including it.  Earlier versions not yet on the Hub go in the same
commit, so the card never names a missing file; files the Hub already has are skipped by
huggingface_hub.  The commit is tagged with the version id.  The token comes from
$HF_TOKEN (or the one saved by `hf auth login`); the endpoint from --endpoint, else
$HF_ENDPOINT, else https://huggingface.co.  A push is an explicit request to use the
network: it is made even when HF_HUB_OFFLINE is set (the project sets it so that no model
is ever downloaded).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from pathlib import Path

from store import SPLITS, DatasetStore, StoreError, check_shard
from store.card import render_card
from store.versions import choose_versions, is_running, version_records

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_ENDPOINT = "https://huggingface.co"


class PublishError(Exception):
    """The push cannot be made (no token, Hub unreachable, refused). Message: one line."""


def repo_id_arg(value: str) -> str:
    """argparse type for ORG/NAME."""
    if not REPO_ID.match(value) or ".." in value or len(value) > 96:
        raise argparse.ArgumentTypeError(f"expected a Hub repository id ORG/NAME, got {value!r}")
    return value


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
    files["README.md"] = render_card(shards, records).encode("utf-8")
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


def preflight_cli(repo_id: str) -> int:
    """For other CLIs, before a long run: check the repository id, the token and that the Hub answers; 0 or 2."""
    try:
        check_access(repo_id)
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def push_cli(store: Path, version: str, repo_id: str) -> int:
    """For other CLIs, after a run: push, print one line on failure; returns an exit status (0, or 2)."""
    try:
        push_version(store, version, repo_id)
    except PublishError as e:
        print(f"error: {e} (the version is kept in {store}: push it later with python -m pipelines.publish "
              f"--store {store} --version {version} --repo {repo_id})", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.publish", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default="synth-store", metavar="DIR", help="the dataset store (default ./synth-store)")
    p.add_argument("--version", default="latest", metavar="ID|latest",
                   help="the version to push (default latest: the newest finished one)")
    p.add_argument("--repo", required=True, type=repo_id_arg, metavar="ORG/NAME", help="Hub dataset repository")
    p.add_argument("--endpoint", metavar="URL", help=f"Hub address (default $HF_ENDPOINT, else {DEFAULT_ENDPOINT})")
    p.add_argument("--private", action="store_true", help="create the repository as private if it does not exist")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        push_version(Path(args.store), args.version, args.repo, endpoint=args.endpoint, private=args.private)
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
