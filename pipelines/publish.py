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
import sys
from pathlib import Path

from pipelines.args import guard
from store.hub import DEFAULT_ENDPOINT, REPO_ID, PublishError, push_version


def repo_id_arg(value: str) -> str:
    """argparse type for ORG/NAME."""
    if not REPO_ID.match(value) or ".." in value or len(value) > 96:
        raise argparse.ArgumentTypeError(f"expected a Hub repository id ORG/NAME, got {value!r}")
    return value


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

    def push() -> None:
        push_version(Path(args.store), args.version, args.repo, endpoint=args.endpoint, private=args.private)

    return guard(push, (PublishError,), "interrupted: a push is one commit, so nothing was half pushed")


if __name__ == "__main__":
    sys.exit(main())
