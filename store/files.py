"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Each write goes to a temp file in the target's folder (``.<name>.<random>.tmp``, so the rename
never crosses file systems and two writers never share a temp file), is fsynced, then renamed
over the target with ``os.replace``.  A write that fails leaves the target as it was and
removes its temp file.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _temp_beside(path: Path, folder: bool = False) -> Path:
    """A new, empty temp file (or folder) beside ``path``, with the permissions ``open`` (``mkdir``) gives."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def open_atomic(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` for writing a whole file (``"w"`` or ``"wb"``); renamed into place when the block
    ends without an error, discarded otherwise.  ``kwargs`` go to ``open`` (encoding, newline)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_atomic: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    if isinstance(data, bytes):
        with open_atomic(path, "wb") as f:
            f.write(data)
    else:
        with open_atomic(path, "w", encoding=encoding) as f:
            f.write(data)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2, sort_keys: bool = True) -> None:
    """Write ``obj`` as JSON (values JSON cannot hold as their ``str``) and a newline, atomically."""
    write_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


@contextlib.contextmanager
def folder_atomic(path: str | os.PathLike) -> Iterator[Path]:
    """A temp folder beside ``path`` to fill; renamed to ``path`` when the block ends without an error.

    If ``path`` exists by then (another process made it first), the temp folder is dropped and
    the existing one kept.  Files are not fsynced: for caches that can be remade.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path, folder=True)
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    """Make a rename into ``path`` durable (fsync the folder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
