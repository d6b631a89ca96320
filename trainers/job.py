"""One training job: real rows plus chosen store versions -> a retriever, then a reranker on its candidates,
each with its training card (``pipelines.train`` builds a ``TrainJob`` from its flags and prints the result).

``train_job`` splits the real rows (``eedi.splits.grouped_holdout``), reads the synthetic rows
(``trainers.data``), mixes them, trains (``trainers.retriever``, ``trainers.reranker``) and writes the
cards (``trainers.card``).  With ``resume_from`` it continues a previous run (``trainers.lineage``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from store import now_iso
from trainers import TrainError
from rankers.documents import documents, folder_cards, save_cards
from trainers.card import write_card
from trainers.data import MixRule, SyntheticSelection
from trainers.lineage import Lineage
from trainers.reranker import RerankerConfig, RerankerResult
from trainers.retriever import RetrieverConfig, RetrieverResult


@dataclass
class TrainJob:
    out: Path  # a new folder: retriever/ and reranker/ go in it
    data_dir: str | Path | None = None  # the competition CSVs (None: eedi.resolve_data_dir's default)
    store: Path | None = None  # a dataset store with synthetic rows (None: real rows only)
    versions: str | None = None  # latest | all | ids (None: latest; with since or resume_from: all newer ones)
    since: str | None = None  # only store versions made after this one
    cards: Path | None = None  # a store whose misconception cards the retriever's documents carry (rankers.documents)
    resume_from: Path | None = None  # a previous job's out (trainers.lineage)
    holdout: float | None = None  # None: the parent's, else lineage.DEFAULT_HOLDOUT
    seed: int | None = None  # holdout, batches, sampling (None: the parent's, else 0)
    mix: MixRule = field(default_factory=MixRule)  # its seed is the job's
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)  # base: resume_from's, if any; seed: the job's
    reranker: RerankerConfig | None = field(default_factory=RerankerConfig)  # None: the retriever only; seed: the job's
    progress: bool = True
    command: list[str] = field(default_factory=list)  # what started the job, recorded in the cards


@dataclass
class TrainResult:
    out: Path
    retriever: RetrieverResult | None = None  # None: nothing to do (no store version after the parent's)
    reranker: RerankerResult | None = None


def train_job(job: TrainJob, log: Callable[[str], None] = print) -> TrainResult:
    from eedi import load_eedi, resolve_data_dir
    from eedi.splits import grouped_holdout
    from trainers.data import mix, real_examples, synthetic_examples

    out = Path(job.out)
    if out.exists() and ((out / "retriever").exists() or (out / "reranker").exists()):
        raise TrainError(f"--out {out}: already holds a trained model; choose a new folder")
    lineage = Lineage.read(job.resume_from)
    holdout, seed = lineage.holdout(job.holdout, job.seed)
    data_dir = resolve_data_dir(job.data_dir)
    data = load_eedi(data_dir)
    selection = _selection(job, lineage, log)
    if selection is None:
        return TrainResult(out)

    train_pairs, val_pairs, held = grouped_holdout(data.train_pairs, holdout, seed)
    real = real_examples(train_pairs)
    val = real_examples(val_pairs)
    cards, cards_source = _cards(job, log)
    docs = documents(data.misconceptions, cards)
    if cards and len(set(cards) & set(docs)) < len(docs):
        log(f"note: {len(docs) - len(set(cards) & set(docs)):,} of {len(docs):,} misconceptions have no card: "
            "their documents are their names alone")
    synthetic = synthetic_examples(selection.rows, data.misconceptions)
    rule = replace(job.mix, seed=seed)
    examples, stats = mix(real, synthetic, rule, held)
    repeated = f" (each x{stats['synthetic_repeat']})" if stats["synthetic_repeat"] > 1 else ""
    held_out = (f"{len(held)} misconceptions held out ({len(val):,} validation rows)" if val
                else "nothing held out (--holdout 0): no validation")
    log(f"data: {len(data.train_pairs):,} real pairs in {data_dir}; {held_out}; training on "
        f"{stats['real']:,} real + {stats['synthetic_used']:,} synthetic rows{repeated}"
        + (f" from {len(selection.versions)} version(s) of {job.store}: {', '.join(selection.versions) or 'none'}"
           if job.store else " (no --store)"))
    if stats["synthetic_dropped_held_out"]:
        log(f"data: {stats['synthetic_dropped_held_out']} synthetic rows of held-out misconceptions left out")

    common = {
        "data": {"real": {"data_dir": str(data_dir), "pairs": len(data.train_pairs), "train_rows": len(real)},
                 "synthetic": selection.record(), "mix": {**rule.record(), **stats},
                 "validation": {"fraction": holdout, "seed": seed, "misconceptions": len(held), "rows": len(val),
                                "grouping": "MisconceptionId"}},
        "lineage": lineage.record(selection.versions),
        "documents": {"cards": cards_source} if cards else {"cards": None, "text": "misconception names"},
        "command": job.command,
    }
    rconf = replace(job.retriever, base=lineage.retriever_base(job.retriever.base), seed=seed)
    retriever = _train_retriever(examples, val, docs, rconf, out / "retriever", common, job, log)
    if cards:
        save_cards(out / "retriever", cards, cards_source)
    reranker = None
    if job.reranker is not None:
        rrconf = replace(job.reranker, seed=seed)
        reranker = _train_reranker(examples, val, data.misconceptions, docs, rconf, rrconf, lineage, out, common,
                                   job, log)
    return TrainResult(out, retriever, reranker)


def _selection(job: TrainJob, lineage: Lineage, log: Callable[[str], None]) -> SyntheticSelection | None:
    """The synthetic rows to train on (none without a store); None: the store has nothing new."""
    from trainers.data import read_synthetic

    if job.store is None:
        return SyntheticSelection()
    since = lineage.since(job.since, job.store)
    spec = job.versions or ("all" if since or job.resume_from else "latest")
    selection = read_synthetic(job.store, spec, since)
    for v in selection.skipped_running:
        log(f"note: version {v} is still running (or was killed and not recovered): not used")
    if since and not selection.versions:
        log(f"nothing to do: {job.store} has no version after {since}")
        return None
    return selection


def _cards(job: TrainJob, log: Callable[[str], None]) -> tuple[dict[int, str] | None, dict | None]:
    """The misconception cards to train with: --cards STORE, else those of the run resumed from, else none."""
    from store import StoreError
    from store.cards import read_cards

    if job.cards is not None:
        try:
            cards, source = read_cards(job.cards)
        except StoreError as e:
            raise TrainError(f"--cards: {e}") from None
        log(f"documents: misconception names with {len(cards):,} cards from {job.cards} "
            + ", ".join(f"{n} by {s}" for s, n in source["sources"].items()))
        return cards, source
    if job.resume_from is not None:
        cards, source = folder_cards(Path(job.resume_from) / "retriever")
        if cards:
            log(f"documents: the {len(cards):,} misconception cards of {job.resume_from}")
            return cards, source
    return None, None


def _train_retriever(examples, val, misconceptions, rconf: RetrieverConfig, folder: Path, common: dict,
                     job: TrainJob, log) -> RetrieverResult:
    from embeddings import DEFAULT_EMBEDDER
    from trainers.retriever import train_retriever

    result = train_retriever(examples, val, misconceptions, rconf, folder, progress=job.progress, log=log)
    write_card(folder, {
        "kind": "retriever", "finished": now_iso(),
        "base": {"name": f"{DEFAULT_EMBEDDER} (embedded)" if rconf.base is None else str(result.base),
                 "path": str(result.base), "kind": result.kind},
        **common, "hyperparameters": {**rconf.record(), "base": str(result.base)}, "validation": result.history,
        "timings": {"mine_and_first_validation_s": result.mine_seconds, "train_s": result.train_seconds,
                    "steps": result.steps, "examples": result.examples,
                    "examples_per_s": result.examples_per_second},
    }, "Retriever for Eedi misconceptions")
    return result


def _train_reranker(examples, val, misconceptions, docs, rconf: RetrieverConfig, rrconf: RerankerConfig, lineage: Lineage,
                    out: Path, common: dict, job: TrainJob, log) -> RerankerResult:
    """Trained on the candidates of the retriever just saved in ``out/retriever`` (which ranks ``docs``)."""
    import prompts
    from rankers.retriever import Index, load_encoder
    from rankers.texts import query_text
    from trainers.reranker import train_reranker

    model, _, _ = load_encoder(out / "retriever", rconf.max_seq_length)
    index = Index(model, docs)

    def rank(rows, k, exclude):
        return index.rank([query_text(r, rconf.with_rationale) for r in rows], k, exclude)

    adapter = lineage.reranker_adapter(rrconf.base, rrconf.scoring)
    result = train_reranker(examples, val, misconceptions, rank, rrconf, out / "reranker", resume_from=adapter,
                            progress=job.progress, log=log)
    write_card(out / "reranker", {
        "kind": "reranker", "scoring": rrconf.scoring, "finished": now_iso(), "base": result.base.record(),
        "precision": result.precision,
        "prompt_version": prompts.load("rerank_listwise" if rrconf.scoring == "listwise" else "rerank").version,
        "retriever": str(out / "retriever"), **common,
        "hyperparameters": rrconf.record(),
        "validation": [{"epoch": "-", "step": result.steps,
                        **{f"{who} {m}": v for who, res in result.evaluation.items() if isinstance(res, dict)
                           for m, v in res.items()}}] if result.evaluation else [],
        "losses": result.losses, "trainable_parameters": result.trainable_parameters,
        "timings": result.seconds,
    }, "LLM reranker (LoRA adapter) for Eedi misconceptions")
    return result
