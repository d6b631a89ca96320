"""python -m pipelines.train: train a retriever, then an LLM reranker, on real rows plus chosen synthetic dataset versions.

Examples:
  python -m pipelines.train --data-dir data/eedi --out models/real-only
  python -m pipelines.train --data-dir data/eedi --store synth-store --versions latest --out models/run1
  python -m pipelines.train --data-dir data/eedi --store synth-store --resume-from models/run1 --out models/run2

--resume-from continues from a previous --out with only the store versions made after the
newest one it used (or after --since VERSION); real rows are always included.  Writes
OUT/retriever (a sentence-transformers folder) and OUT/reranker (a peft LoRA adapter), each
with training_card.json and README.md: data versions and shards, row counts,
hyperparameters, validation MAP@25 and recall@25, timings and lineage.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from eedi import DATA_DIR_ENV, DataError, load_eedi, resolve_data_dir
from embeddings import EmbedderError
from rankers import ModelError
from rankers.reranker import DEFAULT_BASE
from pipelines.args import check_output, count, positive, repeat, run_main
from prompts import TemplateError
from store import StoreError, now_iso
from trainers import TrainError
from trainers.reranker import RerankerConfig
from trainers.retriever import RetrieverConfig

USER_ERRORS = (DataError, TrainError, ModelError, StoreError, EmbedderError, TemplateError)
DEFAULT_HOLDOUT = 0.15
R, RR = RetrieverConfig(), RerankerConfig()


def _fraction(value: str) -> float:
    x = float(value)
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return x


def _ratio(value: str) -> float:
    x = float(value)
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (inf: no limit), got {value}")
    return x


def _margin(value: str) -> float | None:
    if value == "none":
        return None
    x = float(value)
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] or none, got {value}")
    return x


def _layers(value: str) -> int | None:
    return None if value == "all" else positive(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.train", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("data and output")
    io.add_argument("--data-dir", metavar="DIR",
                    help=f"folder with the competition CSVs (default ${DATA_DIR_ENV}, else ./data/eedi)")
    io.add_argument("--store", metavar="DIR", help="dataset store with synthetic rows (default: real rows only)")
    io.add_argument("--versions", metavar="latest|all|ID,...",
                    help="store versions to train on: latest (the newest with kept rows), all, or ids "
                         "separated by commas (default latest; with --since or --resume-from: all newer ones)")
    io.add_argument("--since", metavar="VERSION", help="only store versions made after VERSION (needs --store)")
    io.add_argument("--resume-from", metavar="DIR",
                    help="a previous --out: continue training its retriever and reranker; without --since, "
                         "only versions newer than the newest it used")
    io.add_argument("--out", required=True, metavar="DIR", help="where to write retriever/ and reranker/ (new folder)")
    io.add_argument("--no-progress", action="store_true", help="no progress bars")
    io.add_argument("--threads", type=positive, metavar="N",
                    help="CPU threads for torch (default: one per core; on a machine busy with other work, fewer "
                         "threads avoid oversubscription, which slows training several times over)")

    mixing = p.add_argument_group("mixing real and synthetic rows")
    mixing.add_argument("--synth-per-misconception", type=positive, default=4, metavar="N",
                        help="at most N synthetic rows per misconception, best judge score first (default 4)")
    mixing.add_argument("--synth-ratio", type=_ratio, default=1.0, metavar="R",
                        help="at most R synthetic rows per real training row, taken round-robin over "
                             "misconceptions (default 1.0; inf: no limit)")
    mixing.add_argument("--synth-repeat", type=repeat, default=None, metavar="N|auto",
                        help="use each chosen synthetic row N times per epoch; auto: as often as keeps synthetic "
                             "uses within --synth-ratio x real rows, at most 16 (default auto)")

    val = p.add_argument_group("validation (real rows of misconceptions unseen in training)")
    val.add_argument("--holdout", type=_fraction, default=None, metavar="F",
                     help=f"fraction of the misconceptions with real rows held out (default {DEFAULT_HOLDOUT}; "
                          "0: train on every real row, without validation; "
                          "with --resume-from: the parent's)")
    val.add_argument("--seed", type=int, default=None,
                     help="seed for the holdout, batches and sampling (default 0; with --resume-from: the parent's)")

    r = p.add_argument_group("retriever (sentence-transformers, MultipleNegativesRankingLoss)")
    r.add_argument("--retriever-base", metavar="DIR",
                   help="a sentence-transformers folder, or a decoder-LLM transformers folder (last-token "
                        "pooling) (default: the embedded all-MiniLM-L6-v2)")
    r.add_argument("--epochs", type=positive, default=R.epochs, metavar="N", help=f"epochs (default {R.epochs})")
    r.add_argument("--batch-size", type=positive, default=R.batch_size, metavar="N",
                   help=f"rows per batch; in-batch negatives (default {R.batch_size})")
    r.add_argument("--max-steps", type=count, default=0, metavar="N",
                   help="retriever step budget over all epochs; 0: no budget, every batch of every epoch (default "
                        "0: synthetic rows lifted unseen MAP@25 three times as much in a full epoch as in 50 steps; "
                        "times in README, Training)")
    r.add_argument("--eval-every", type=positive, metavar="N",
                   help="also validate every N retriever steps within an epoch (default: after each epoch only)")
    r.add_argument("--lr", type=float, default=R.lr, help=f"retriever learning rate (default {R.lr:g})")
    r.add_argument("--hard-negatives", type=count, default=R.hard_negatives, metavar="K",
                   help="hard negatives per row, mined with the starting model, never the true misconception "
                        f"(default {R.hard_negatives})")
    r.add_argument("--negative-margin", type=_margin, default=R.negative_margin, metavar="M|none",
                   help="skip mined names scoring at least M x the true name's score, mostly near-synonyms "
                        f"of the truth (default {R.negative_margin}; none: keep the top ones)")
    r.add_argument("--max-seq-length", type=positive, default=R.max_seq_length, metavar="N",
                   help=f"retriever tokens per text (default {R.max_seq_length})")
    r.add_argument("--with-rationale", action="store_true",
                   help="add the synthetic rows' rationale to the retriever's and reranker's query text")
    r.add_argument("--lora", action="store_true", help="LoRA (peft) instead of full training: for LLM retriever bases")

    rr = p.add_argument_group("reranker (LLM with LoRA: pointwise logit Yes - logit No, or listwise letters)")
    rr.add_argument("--reranker-kind", choices=("pointwise", "listwise"), default="pointwise",
                    help="pointwise: one candidate per prompt, Yes/No; listwise: K lettered candidates per prompt, "
                         "cross-entropy on the true letter, K drawn per row from half, 3/4 and all of "
                         "--rerank-window (default pointwise)")
    rr.add_argument("--rerank-window", type=positive, default=RR.window, metavar="K",
                    help=f"listwise: the most candidates per prompt, at most 26 (default {RR.window})")
    rr.add_argument("--reranker-base", default=DEFAULT_BASE, metavar="MODEL",
                    help=f"a preset, a .gguf file or a transformers folder (default {DEFAULT_BASE}, loaded from "
                         "its GGUF)")
    rr.add_argument("--reranker-steps", type=positive, default=RR.steps, metavar="N",
                    help=f"reranker step budget (default {RR.steps}: about 5 minutes for the 0.5B on 2 CPU cores, "
                         "9-10 s per step)")
    rr.add_argument("--groups-per-step", type=positive, default=RR.groups_per_step, metavar="N",
                    help=f"rows per reranker step (default {RR.groups_per_step})")
    rr.add_argument("--negatives", type=positive, default=RR.negatives, metavar="N",
                    help=f"negatives per row, drawn from the retriever's top {RR.candidates} (default {RR.negatives})")
    rr.add_argument("--reranker-lr", type=float, default=RR.lr, help=f"reranker learning rate (default {RR.lr:g})")
    rr.add_argument("--reranker-max-tokens", type=positive, default=RR.max_tokens, metavar="N",
                    help=f"prompt length cap; the question is shortened to fit (default {RR.max_tokens})")
    rr.add_argument("--lora-layers", type=_layers, default=RR.lora_layers, metavar="N|all",
                    help=f"LoRA on the last N layers only; the backward pass stops there (default {RR.lora_layers})")
    rr.add_argument("--rerank-eval", type=count, default=RR.eval_queries, metavar="N",
                    help=f"held-out rows whose retriever top {RR.eval_top} are reranked after training "
                         f"(default {RR.eval_queries}; 0: none)")
    rr.add_argument("--skip-reranker", action="store_true", help="train the retriever only")
    return p


def _log(message: str) -> None:
    print(message, flush=True)


def _parent(resume: Path | None) -> dict | None:
    if resume is None:
        return None
    from rankers.card import read_card

    if not resume.is_dir():
        raise TrainError(f"--resume-from {resume}: folder not found")
    return read_card(resume / "retriever")


def _since(args, parent: dict | None, store: Path | None) -> str | None:
    """--since, or with --resume-from the newest store version the parent (and its ancestors) used."""
    if args.since or parent is None or store is None:
        return args.since
    seen = parent.get("lineage", {}).get("versions_seen", [])
    return max(seen) if seen else None


def run(args: argparse.Namespace) -> int:
    from eedi.splits import grouped_holdout
    from rankers.retriever import Index, load_encoder
    from rankers.texts import query_text
    from trainers.card import write_card
    from trainers.data import (
        MixRule,
        SyntheticSelection,
        mix,
        read_synthetic,
        real_examples,
        synthetic_examples,
    )
    from trainers.reranker import train_reranker
    from trainers.retriever import train_retriever

    started = time.perf_counter()
    out = Path(args.out)
    resume = Path(args.resume_from) if args.resume_from else None
    check_output(out, "--out", folder=True)
    if out.exists() and ((out / "retriever").exists() or (out / "reranker").exists()):
        raise TrainError(f"--out {out}: already holds a trained model; choose a new folder")
    parent = _parent(resume)
    holdout, seed = args.holdout, args.seed
    if parent is not None:
        pv = parent["data"]["validation"]
        for name, mine, theirs in (("--holdout", holdout, pv["fraction"]), ("--seed", seed, pv["seed"])):
            if mine is not None and mine != theirs:
                raise TrainError(f"{name} {mine}: {resume} was validated with {name} {theirs}; a different "
                                 "holdout would validate on misconceptions it trained on")
        holdout, seed = pv["fraction"], pv["seed"]
    holdout = DEFAULT_HOLDOUT if holdout is None else holdout
    seed = 0 if seed is None else seed

    data_dir = resolve_data_dir(args.data_dir)
    data = load_eedi(data_dir)
    store = Path(args.store) if args.store else None
    since = _since(args, parent, store)
    selection = SyntheticSelection()
    if store is not None:
        if since and not args.since:
            from trainers.data import store_versions

            if since not in {r.get("id") for r in store_versions(store)}:
                raise TrainError(f"{resume} was trained on version {since}, which is not in {store}: "
                                 "choose the versions with --since VERSION or --versions")
        spec = args.versions or ("all" if since or resume else "latest")
        selection = read_synthetic(store, spec, since)
        for v in selection.skipped_running:
            _log(f"note: version {v} is still running (or was killed and not recovered): not used")
        if since and not selection.versions:
            _log(f"nothing to do: {store} has no version after {since}")
            return 0

    train_pairs, val_pairs, held = grouped_holdout(data.train_pairs, holdout, seed)
    real = real_examples(train_pairs)
    val = real_examples(val_pairs)
    synthetic = synthetic_examples(selection.rows, data.misconceptions)
    rule = MixRule(args.synth_per_misconception, args.synth_ratio, seed, args.synth_repeat)
    examples, stats = mix(real, synthetic, rule, held)
    repeated = f" (each x{stats['synthetic_repeat']})" if stats["synthetic_repeat"] > 1 else ""
    held_out = (f"{len(held)} misconceptions held out ({len(val):,} validation rows)" if val
                else "nothing held out (--holdout 0): no validation")
    _log(f"data: {len(data.train_pairs):,} real pairs in {data_dir}; {held_out}; training on "
         f"{stats['real']:,} real + {stats['synthetic_used']:,} synthetic rows{repeated}"
         + (f" from {len(selection.versions)} version(s) of {store}: {', '.join(selection.versions) or 'none'}"
            if store else " (no --store)"))
    if stats["synthetic_dropped_held_out"]:
        _log(f"data: {stats['synthetic_dropped_held_out']} synthetic rows of held-out misconceptions left out")

    parent_seen = parent.get("lineage", {}).get("versions_seen", []) if parent else []
    common = {
        "data": {"real": {"data_dir": str(data_dir), "pairs": len(data.train_pairs), "train_rows": len(real)},
                 "synthetic": selection.record(), "mix": {**rule.record(), **stats},
                 "validation": {"fraction": holdout, "seed": seed, "misconceptions": len(held), "rows": len(val),
                                "grouping": "MisconceptionId"}},
        "lineage": {"resumed_from": str(resume) if resume else None,
                    "parent_versions": parent["data"]["synthetic"]["versions"] if parent else [],
                    "versions_seen": sorted(set(parent_seen) | set(selection.versions)),
                    "parent_lineage": parent.get("lineage") if parent else None},
        "command": ["python", "-m", "pipelines.train", *sys.argv[1:]],
    }

    rconf = RetrieverConfig(
        base=str(resume / "retriever") if resume else args.retriever_base, epochs=args.epochs,
        batch_size=args.batch_size, max_steps=args.max_steps or None, lr=args.lr,
        hard_negatives=args.hard_negatives, negative_margin=args.negative_margin, eval_every=args.eval_every,
        with_rationale=args.with_rationale, max_seq_length=args.max_seq_length, lora=args.lora, seed=seed)
    rresult = train_retriever(examples, val, data.misconceptions, rconf, out / "retriever",
                              progress=not args.no_progress, log=_log)
    write_card(out / "retriever", {
        "kind": "retriever", "finished": now_iso(),
        "base": {"name": _retriever_name(rconf.base, rresult.base), "path": str(rresult.base), "kind": rresult.kind},
        **common, "hyperparameters": {**rconf.record(), "base": str(rresult.base)}, "validation": rresult.history,
        "timings": {"mine_and_first_validation_s": rresult.mine_seconds, "train_s": rresult.train_seconds,
                    "steps": rresult.steps, "examples": rresult.examples,
                    "examples_per_s": rresult.examples_per_second},
    }, "Retriever for Eedi misconceptions")

    rr_result = None
    if not args.skip_reranker:
        model, _, _ = load_encoder(out / "retriever", args.max_seq_length)
        index = Index(model, data.misconceptions)

        def rank(rows, k, exclude):
            return index.rank([query_text(r, args.with_rationale) for r in rows], k, exclude)

        parent_adapter = resume / "reranker" if resume and (resume / "reranker" / "adapter_config.json").is_file() \
            else None
        rrconf = RerankerConfig(
            base=args.reranker_base, steps=args.reranker_steps, groups_per_step=args.groups_per_step,
            negatives=args.negatives, lr=args.reranker_lr, max_tokens=args.reranker_max_tokens,
            lora_layers=args.lora_layers, with_rationale=args.with_rationale, eval_queries=args.rerank_eval,
            scoring=args.reranker_kind, window=args.rerank_window, seed=seed)
        if parent_adapter is not None:
            _check_same_base(parent_adapter, rrconf.base, rrconf.scoring)
        rr_result = train_reranker(examples, val, data.misconceptions, rank, rrconf, out / "reranker",
                                   resume_from=parent_adapter, progress=not args.no_progress, log=_log)
        write_card(out / "reranker", {
            "kind": "reranker", "scoring": rrconf.scoring, "finished": now_iso(), "base": rr_result.base.record(),
            "precision": rr_result.precision, "prompt_version": _prompt_version(rrconf.scoring),
            "retriever": str(out / "retriever"), **common,
            "hyperparameters": rrconf.record(),
            "validation": [{"epoch": "-", "step": rr_result.steps,
                            **{f"{who} {m}": v for who, res in rr_result.evaluation.items() if isinstance(res, dict)
                               for m, v in res.items()}}] if rr_result.evaluation else [],
            "losses": rr_result.losses, "trainable_parameters": rr_result.trainable_parameters,
            "timings": rr_result.seconds,
        }, "LLM reranker (LoRA adapter) for Eedi misconceptions")

    _summary(out, rresult, rr_result, time.perf_counter() - started)
    return 0


def _retriever_name(spec: str | None, path: Path) -> str:
    from embeddings import DEFAULT_EMBEDDER

    return f"{DEFAULT_EMBEDDER} (embedded)" if spec is None else str(path)


def _check_same_base(adapter: Path, spec: str, scoring: str) -> None:
    from rankers.card import read_card
    from rankers.reranker import resolve_base

    card = read_card(adapter)
    if card.get("scoring", "pointwise") != scoring:
        raise TrainError(f"--reranker-kind {scoring}: the adapter in {adapter} is a {card.get('scoring', 'pointwise')} "
                         "reranker; resume with the same kind")
    theirs = card["base"]
    mine = resolve_base(spec)
    if (theirs.get("sha256"), theirs.get("name")) != (mine.sha256, mine.name):
        raise TrainError(f"--reranker-base {spec}: the adapter in {adapter} was trained on {theirs.get('name')}; "
                         "resume with the same base")


def _prompt_version(scoring: str = "pointwise") -> str:
    import prompts

    return prompts.load("rerank_listwise" if scoring == "listwise" else "rerank").version


def _summary(out: Path, r, rr, seconds: float) -> None:
    lines = ["", f"trained in {seconds:.0f} s -> {out}",
             (f"  retriever  {out / 'retriever'}: {r.steps} steps, {r.examples:,} examples in "
              f"{r.train_seconds:.0f} s ({r.examples_per_second:g} examples/s)")]
    if r.history:
        first, last = r.history[0], r.history[-1]
        lines.append(f"    validation MAP@25 {first['map@25']:.4f} -> {last['map@25']:.4f}, recall@25 "
                     f"{first['recall@25']:.4f} -> {last['recall@25']:.4f} ({last['queries']} held-out rows)")
    else:
        lines.append("    no validation (--holdout 0)")
    if rr is not None:
        lines.append(f"  reranker   {out / 'reranker'}: {rr.steps} steps in {rr.seconds['train']:.0f} s "
                     f"({rr.seconds['per_step']:g} s/step), load {rr.seconds['load']:.0f} s")
        if rr.evaluation:
            lines.append(f"    rerank of the retriever's top {rr.evaluation['top']} on "
                         f"{rr.evaluation['reranked']['queries']} held-out rows: MAP@25 "
                         f"{rr.evaluation['retriever']['map@25']:.4f} -> {rr.evaluation['reranked']['map@25']:.4f}")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.since and not args.store:
        parser.error("--since needs --store")
    if args.versions and not args.store:
        parser.error("--versions needs --store")
    if args.lr <= 0 or args.reranker_lr <= 0:
        parser.error("learning rates must be positive")
    if not 2 <= args.rerank_window <= 26:
        parser.error("--rerank-window must be in 2..26 (one letter per candidate)")
    if math.isnan(args.synth_ratio):
        parser.error("--synth-ratio must be a number")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub while training
    return run_main(run, args, USER_ERRORS, "interrupted: nothing was saved for the stage in progress")


if __name__ == "__main__":
    sys.exit(main())
