"""What the command-line interfaces share: argparse value types (a bad value is a usage error, exit 2),
the fold flags, ``UsageError`` for flags that contradict each other, and ``run_main``/``guard``: a user's
mistake is one line and exit 2, Ctrl-C exit 130."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm.stage import number


class UsageError(Exception):
    """Flags whose values are each well formed but cannot be honoured together. Message: one line."""


def positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def count(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def weight(value: str) -> float:
    w = float(value)
    if not w >= 0 or w == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {value}")
    return w


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser that raises ValueError with the reason (``llm.stage.number``, an ``Option.parse``) as an argparse
    type: the reason becomes the flag's one-line error."""
    def convert(value: str):
        try:
            return parse(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def number_in(lo: float | None = None, hi: float | None = None, kind: type = float,
              why: str = "") -> Callable[[str], float]:
    """An argparse type: a number (``kind``: float or int) within [lo, hi] (None: no bound); ``why`` says
    what the bound is for, in the message."""
    return argparse_type(number(kind, lo, hi, why=why))


def repeat(value: str) -> int | None:
    """--synth-repeat: a whole number of uses per epoch, or auto (None)."""
    if value.strip() == "auto":
        return None
    try:
        return positive(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {value!r}") from None


def repeats(value: str) -> list[int | None]:
    """A comma-separated list of --synth-repeat values."""
    out: list[int | None] = []
    for v in (v for v in value.split(",") if v.strip()):
        r = repeat(v)
        if r not in out:
            out.append(r)
    return out


FOLD_BY = {"misconception": "MisconceptionId", "construct": "ConstructId"}
DEFAULT_FOLDS = 5
folds = number_in(2, kind=int, why="one fold validates, the others train")


def add_fold_args(group, fold_by_help: str | None = None) -> None:
    """--folds / --fold-by / --fold-seed: the grouped k-fold split shared by synth --hide-fold and evaluate."""
    group.add_argument("--folds", type=folds, default=DEFAULT_FOLDS, metavar="K",
                       help=f"folds of the grouped cross-validation split of the real rows (default {DEFAULT_FOLDS})")
    group.add_argument("--fold-by", choices=sorted(FOLD_BY), default="misconception",
                       help=fold_by_help or "group the folds by misconception (each fold's misconceptions are "
                            "unseen in the other folds) or by construct (default misconception)")
    group.add_argument("--fold-seed", type=int, default=0, metavar="S", help="seed of the fold assignment (default 0)")


def check_output(path: str | os.PathLike, flag: str, folder: bool = False) -> None:
    """Before the work starts: ``path`` (a file to write, or with ``folder`` a folder to fill) can be written,
    so a run never fails at its end on a bad output path. UsageError names the flag."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder; choose a new folder")
    if not folder and path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; name the file to write")
    for above in ([path] if folder else []) + list(path.parents):  # the nearest folder that exists
        if above.exists():
            if not above.is_dir():
                raise UsageError(f"{flag} {path}: {above} is not a folder")
            if not os.access(above, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {path}: cannot write in {above}")
            return


def run_main(run: Callable[[argparse.Namespace], int], args: argparse.Namespace,
             user_errors: tuple[type[BaseException], ...], interrupted: str) -> int:
    """Run a CLI's job with ``--threads`` and ``--no-progress`` applied; user errors and unreadable files
    print ``error: ...``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if getattr(args, "no_progress", False):
        os.environ["TQDM_DISABLE"] = "1"  # libraries' bars too (transformers' GGUF loading)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return guard(lambda: run(args), user_errors, interrupted)


def all_user_errors() -> tuple[type[BaseException], ...]:
    """The errors every layer raises for a user's mistake (data, model, server, store, template, training),
    for a script that reaches all of them (the benchmarks)."""
    from eedi import DataError
    from embeddings import EmbedderError
    from llm import BackendError
    from prompts import TemplateError
    from rankers import ModelError
    from store import StoreError
    from trainers import TrainError

    return DataError, EmbedderError, BackendError, TemplateError, ModelError, StoreError, TrainError


def guard(job: Callable[[], int | None], user_errors: tuple[type[BaseException], ...],
          interrupted: str = "interrupted") -> int:
    """Run ``job`` (a CLI's or a benchmark's); a user's mistake prints ``error: ...`` (one line) and
    returns 2, Ctrl-C 130; otherwise the job's exit status (None is 0)."""
    try:
        return job() or 0
    except (*user_errors, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def add_listwise_args(group, served: bool = False) -> None:
    """The listwise reranker's window flags, shared by infer and evaluate (``served``: the job can rerank through a
    server, whose top_logprobs caps the window)."""
    group.add_argument("--rerank-window", type=positive, default=8, metavar="K",
                       help="listwise: candidates per prompt, lettered A.. (default 8; at most 26"
                            + (", 20 when served)" if served else ")"))
    group.add_argument("--rerank-orders", choices=("both", "forward"), default="both",
                       help="listwise: each window also in reversed order, scores averaged (default both)")


def positive_floats(value: str) -> list[float]:
    """An argparse type: positive numbers separated by commas (boosts, weights)."""
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {value!r}") from None
    if not out or any(not v > 0 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas, got {value!r}")
    return out
