"""The checks a run may choose (``--checks``): the built-in ones by name, and any ``llm.stage.Stage`` subclass
by its import path (``--checks my_checks:LongAnswers``).

A check describes itself (``llm.stage.Stage``): its name, role, columns, its ``options`` (the settings users
choose, each with its flag, default, help and range), what a row must carry for it (``needs``), its settings for the items'
``ChecksKey``. ``pipelines.synth`` builds its ``--checks`` help and each check's flags from here, the
engine its schema, counts, record and card. To add a built-in check: one file in ``judges/`` and one entry
in ``BUILT_IN`` below (docs/extending.md).
"""
from __future__ import annotations

import importlib
from typing import Any

from judges import PickMisconception, RoundTrip, RubricJudge, Solver
from llm.stage import Option, Stage

BUILT_IN: tuple[type[Stage], ...] = (Solver, PickMisconception, RoundTrip, RubricJudge)
CHECKS: dict[str, type[Stage]] = {c.name: c for c in BUILT_IN}


class CheckError(ValueError):
    """A --checks entry that names no check. One line."""


def check_class(spec: str) -> type[Stage]:
    """A built-in check by name, or ``module:Class`` (a ``Stage`` subclass importable from ``sys.path``)."""
    if spec in CHECKS:
        return CHECKS[spec]
    if ":" not in spec:
        raise CheckError(f"unknown check {spec!r} (choose from {', '.join(CHECKS)}, or module:Class, or none)")
    module, _, name = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise CheckError(f"check {spec!r}: cannot import {name!r} from {module!r} ({e})") from None
    if not (isinstance(found, type) and issubclass(found, Stage) and getattr(found, "name", None)):
        raise CheckError(f"check {spec!r}: {name} is not a llm.stage.Stage subclass with a name")
    return found


def check_options(specs: list[str]) -> list[tuple[type[Stage], Option]]:
    """Every option of the built-in checks and of the named ones, each once."""
    classes = list(dict.fromkeys([*BUILT_IN, *(check_class(s) for s in specs)]))
    return [(c, o) for c in classes for o in c.options]


def build_check(spec: str, settings: dict[str, dict[str, Any]]) -> Stage:
    """The check, built from its options' values in ``settings[spec]`` (defaults for the rest)."""
    cls = check_class(spec)
    given = settings.get(cls.name, {})
    return cls(**{o.field: given.get(o.field, o.default) for o in cls.options})
