"""Shared fixtures. Tests read the competition data from ../shared/data/eedi (or $EEDI_DATA_DIR)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("EEDI_DATA_DIR") or REPO.parent / "shared" / "data" / "eedi")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


SLOW_KINDS = ("llm", "training", "ray")  # each of these is also "slow": -m "not slow" is the fast lane


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "train.csv").is_file():
        pytest.fail(f"competition data not found in {DATA_DIR} (set EEDI_DATA_DIR)")
    return DATA_DIR


@pytest.fixture
def data_copy(tmp_path: Path, data_dir: Path) -> Path:
    """A writable copy of the data folder, for tests that break a file."""
    target = tmp_path / "eedi"
    shutil.copytree(data_dir, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


@pytest.fixture(scope="session")
def embedder():
    from embeddings import Embedder

    return Embedder()


def run_cli(*args: str, env: dict | None = None, timeout: float = 600):
    """Run ``python -m <args>`` from the repository root; returns the CompletedProcess."""
    import subprocess

    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server with the embedded 0.5B model on 127.0.0.1, as a user starts it by hand."""
    from llm import DEFAULT_PRESET, resolve_model
    from llm.server import LlamaServer

    model = resolve_model(DEFAULT_PRESET)
    server = LlamaServer(model.path, alias="qwen-0.5b", n_ctx=4096, log_dir=tmp_path_factory.mktemp("server"))
    with server:
        yield server
