"""Choose and load the models that rank, for ``pipelines.infer`` and ``evaluation.crossval`` alike.

- ``newest_run``: the newest ``models/*/<part>`` written by ``pipelines.train`` (by its training card);
- ``choose_retrievers`` / ``choose_reranker``: what was asked for, else the newest trained run, else
  the embedded models zero-shot;
- ``load_retriever`` / ``build_retriever``: one retriever, or several as an ``Ensemble``;
- ``build_reranker``: an LLM in this process (a trained adapter or a base model) or one served through
  ``llm.Backend`` (``ServedReranker``), listwise in windows of the given size.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from inference.ranking import Ensemble, Reranker, Retriever, ServedReranker
from rankers.card import CARD_FILE
from rankers.listwise import DEFAULT_WINDOW, Windows

EMBEDDED = "embedded"  # the retriever spec of the embedded all-MiniLM-L6-v2, zero-shot
ZERO_SHOT_RERANKER = "qwen2.5-coder-0.5b"


def newest_run(models: Path, part: str) -> Path | None:
    """The newest ``models/*/<part>`` with a training card (by the card's ``finished`` time)."""
    best = None
    for card in models.glob(f"*/{part}/{CARD_FILE}"):
        try:
            finished = json.loads(card.read_text()).get("finished", "")
        except (OSError, json.JSONDecodeError):
            continue
        if best is None or finished > best[0]:
            best = (finished, card.parent)
    return best[1] if best else None


def choose_retrievers(models: Path, specs: Sequence[str | Path] | None) -> list[str | Path]:
    """The retrievers asked for, else the newest trained under ``models``, else the embedded one."""
    return list(specs) if specs else [newest_run(models, "retriever") or EMBEDDED]


def choose_reranker(models: Path, spec: str | None, top_n: int = 1, served: bool = False) -> str | Path | None:
    """What reranks in this process: None for ``none``, a top of 0 or a served reranker; else the reranker
    asked for (a folder or a base model), else the newest trained under ``models``, else the base model
    zero-shot."""
    if served or spec == "none" or not top_n:
        return None
    return spec or newest_run(models, "reranker") or ZERO_SHOT_RERANKER


def _folder(spec: str | Path | None) -> str | Path | None:
    return None if spec is None or str(spec) == EMBEDDED else spec


def load_retriever(spec: str | Path | None, misconceptions: dict[int, str], cache: Path | None = None,
                   cards: dict[int, str] | None = None) -> Retriever:
    """A retriever folder, or ``embedded`` (or None) for all-MiniLM-L6-v2 zero-shot; ``cache``: where the
    misconception embeddings are cached; ``cards``: misconception cards to append to the names (None: those
    the folder was trained with, if any)."""
    return Retriever(_folder(spec), misconceptions, cache=cache, cards=cards)


def build_retriever(specs: Sequence[str | Path], misconceptions: dict[int, str], how: str = "rank",
                    weights: Sequence[float] | None = None, cache: Path | None = None,
                    log: Callable[[str], None] = print) -> Retriever | Ensemble:
    """One retriever per spec (``load_retriever``); several are an ``Ensemble`` (``how``, ``weights``)."""
    members = []
    for spec in specs:
        member = load_retriever(spec, misconceptions, cache)
        log(f"retriever: {member.path}{' (embedded, zero-shot)' if _folder(spec) is None else ''}; misconception "
            f"embeddings {'from the cache' if member.cached else 'computed and cached'}"
            + (f"; names with the {member.cards} misconception cards it was trained with" if member.cards else ""))
        members.append(member)
    if len(members) == 1:
        return members[0]
    ensemble = Ensemble(members, how, weights)
    log(f"ensemble: {len(members)} retrievers by {how} average, weights "
        f"{', '.join(f'{w:.2f}' for w in ensemble.weights)}")
    return ensemble


def build_reranker(spec: str | Path | None = None, kind: str | None = None, window: int = DEFAULT_WINDOW,
                   stride: int | None = None, orders: str = "both", base_url: str | None = None,
                   model: str | None = None, request_cache: Path | None = None) -> Reranker | ServedReranker | None:
    """The served model at ``base_url`` (listwise; answers kept in ``request_cache``, default
    ``<cache>/requests/rerank.sqlite``), else ``spec`` in this process (a trained folder or a base model;
    ``kind``: pointwise or listwise, default the trained one's), else None.  Listwise windows: ``window``
    candidates, ``stride`` apart (default: side by side), ``orders`` both or forward."""
    windows = Windows(window, stride, reverse=orders == "both")  # checked even when nothing reranks
    if base_url:
        from llm import cache_dir

        return ServedReranker(base_url, model, windows,
                              cache=request_cache or cache_dir() / "requests" / "rerank.sqlite")
    return Reranker(spec, kind=kind, windows=windows) if spec else None
