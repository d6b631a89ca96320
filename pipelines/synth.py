"""python -m pipelines.synth: make checked, explained synthetic training rows for misconceptions that lack real ones.

Examples:
  python -m pipelines.synth --list-clusters --data-dir data/eedi
  python -m pipelines.synth --cluster all --data-dir data/eedi --store synth-store
  python -m pipelines.synth --misconceptions ids.txt --mode distractor --per-misconception 3
  python -m pipelines.synth --cluster 12 --mode question --checks solve,pick --limit 20
  python -m pipelines.synth --cluster all --hide-fold 0 --store eval-store   # evaluation data
  python -m pipelines.synth --cluster all --mode pairing --store control      # the LLM-free control, seconds
  python -m pipelines.synth --misconception-cards --store synth-store         # a card for every misconception

  python -m pipelines.synth --cluster all --base-url http://127.0.0.1:8000/v1 --concurrency 16
  python -m pipelines.synth --cluster all --engine vllm --model Qwen/Qwen2.5-7B-Instruct
  python -m pipelines.synth --cluster all --executor ray                          # a local Ray, one worker per 2 CPUs
  python -m pipelines.synth --cluster all --executor ray --ray-address auto --engine vllm --model M  # a GPU each

Re-running the same command continues a killed run: items already in the
store (kept or rejected) with the same check settings are skipped, and LLM
answers already received are replayed from the request cache.  Items stored
under other check settings (other --checks, judge or solver model, prompt
templates, thresholds such as --min-score) are judged again into the new
version; their generator answers replay from the cache, and the earlier
version keeps its own verdicts.  With --executor ray the same holds: the
driver stores each task's answers as it returns and is the only writer.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eedi import DATA_DIR_ENV, DataError, resolve_data_dir
from embeddings import ClusterParams, EmbedderError
from factory.checks import BUILT_IN, CheckError, check_class, check_options
from factory.config import DEFAULT_SHOTS, DEFAULT_TASK_ITEMS, EXECUTORS, RATIONALES, SynthConfig
from factory.modes import DEFAULT_MODE, MODES
from generators.distractor import DEFAULT_WRITER, MAX_ANSWERS, WRITERS
from judges import NEAR_DUPLICATE_THRESHOLD
from llm import DEFAULT_PRESET, ENGINES, MIN_N_CTX, PRESETS, BackendError, BackendOptions
from llm.openai_backend import STRUCTURED_MODES
from pipelines.args import FOLD_BY, add_fold_args, argparse_type, count, number_in, positive, run_main
from prompts import TemplateError
from store import StoreError
from store.hub import PublishError, check_access, push_version
from eedi.splits import FoldSpec

USER_ERRORS = (DataError, BackendError, StoreError, EmbedderError, TemplateError, PublishError)


def _cluster_arg(value: str) -> str:
    if value != "all" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a cluster id or 'all', got {value!r}")
    return value


def _checks_arg(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["none"]:
        return []
    if "none" in names:
        raise argparse.ArgumentTypeError(f"'none' (no check) cannot be combined with other checks, got {value!r}")
    try:
        return list(dict.fromkeys(check_class(n).name if ":" not in n else n for n in names))
    except CheckError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _checks_named(argv: list[str] | None) -> list[str]:
    """The --checks of the command line, read before the parser is built: a check given as module:Class brings
    its own flags."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--checks", default="")
    known, _ = early.parse_known_args(argv)
    return [n.strip() for n in known.checks.split(",") if ":" in n]


def read_misconception_file(path: str) -> list[int]:
    """One MisconceptionId per line; '#' starts a comment; blank lines are skipped. DataError names the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    ids = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.lstrip("-").isdigit():
            raise DataError(f"{path}: line {number}: expected a MisconceptionId, got {text[:40]!r}")
        ids.append(int(text))
    if not ids:
        raise DataError(f"{path}: no MisconceptionId in the file")
    return ids


def build_parser(plugins: list[str] = ()) -> argparse.ArgumentParser:
    """The command line; ``plugins``: checks named as module:Class, whose options become flags too."""
    models = ", ".join(PRESETS)
    p = argparse.ArgumentParser(
        prog="python -m pipelines.synth", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to make")
    what.add_argument("--cluster", action="append", type=_cluster_arg, metavar="ID|all",
                      help="a cluster id (repeatable), or 'all' for every cluster with targets")
    what.add_argument("--misconception", action="append", type=int, metavar="ID",
                      help="only this target misconception (repeatable); combinable with --cluster")
    what.add_argument("--misconceptions", metavar="FILE",
                      help="only the target misconceptions listed in FILE, one MisconceptionId per line "
                           "('#' starts a comment). An id not in misconception_mapping.csv is an error; a listed "
                           "misconception that is not a target (see --min-real-rows) is skipped with a warning")
    what.add_argument("--fill-gaps", action="store_true",
                      help="only the targets the store holds no kept row for yet (rows made with the same "
                           "--hide-fold, any mode and version, but not those of earlier --fill-gaps runs of this "
                           "mode, so a killed fill run re-run fills the same gaps): e.g. --mode pairing --fill-gaps "
                           "after an LLM run gives the targets its checks left without a row the control's rows "
                           "(measured in docs/synth.md)")
    what.add_argument("--mode", choices=list(MODES), default=DEFAULT_MODE,
                      help="; ".join(f"{m.name}: {m.summary}" for m in MODES.values()) + f" (default {DEFAULT_MODE})")
    what.add_argument("--misconception-cards", action="store_true",
                      help="instead of rows, the teacher (--teacher-model) writes a card for every misconception "
                           "(or those of --misconception/--misconceptions): a short explanation and one worked "
                           "wrong example, from the name alone, into the store's config 'cards'; train and "
                           "evaluate use them with --cards STORE")
    what.add_argument("--list-clusters", action="store_true",
                      help="print each cluster's id, size, real rows, targets and a few names, then exit")
    what.add_argument("--per-misconception", type=positive, metavar="N",
                      help="items to make per target misconception (distractor and pairing modes: one per base "
                           "question, the N best-fitting ones) (default: "
                           + ", ".join(f"{m.per_misconception} in {m.name} mode" for m in MODES.values()) + ")")
    what.add_argument("--limit", type=positive, metavar="N", help="make at most N items in this run")
    what.add_argument("--min-real-rows", type=positive, default=1, metavar="K",
                      help="targets are misconceptions with fewer than K real training rows "
                           "(default 1: those with none)")
    what.add_argument("--seed", type=int, default=0, help="seed for sampling; a new seed makes new items (default 0)")
    what.add_argument("--hide-fold", type=int, metavar="F",
                      help="evaluation data: hide fold F's real rows (no shots, no near-duplicate references) and "
                           "make items for its misconceptions only, as if they had no rows; rows record the fold "
                           "(RealRowsHidden) and python -m pipelines.evaluate trains only that fold on them")
    add_fold_args(what)

    io = p.add_argument_group("input and output")
    io.add_argument("--data-dir", metavar="DIR",
                    help=f"folder with the competition CSVs (default ${DATA_DIR_ENV}, else ./data/eedi)")
    io.add_argument("--store", default="synth-store", metavar="DIR",
                    help="dataset store folder, created if missing; each run adds a version (default ./synth-store)")
    io.add_argument("--no-progress", action="store_true", help="no progress bar")
    io.add_argument("--push-to-hub", metavar="ORG/NAME",
                    help="after the run, push its version to this Hub dataset repository as one commit tagged "
                         "with the version id (token from $HF_TOKEN; see python -m pipelines.publish)")

    llm = p.add_argument_group(
        "models and backends",
        f"Default: the embedded model ({DEFAULT_PRESET}) on llama.cpp's OpenAI-compatible server, started on "
        f"127.0.0.1 for the run. For the embedded engine a model is a preset ({models}) or a .gguf path; with "
        "--base-url it is the name the server serves (default: the first it lists); with --engine vllm a "
        "Hugging Face id or folder.")
    llm.add_argument("--engine", choices=ENGINES, default=None,
                     help="embedded (default), openai (a running OpenAI-compatible server; implied by --base-url) "
                          "or vllm (in-process, needs the [gpu] extra)")
    llm.add_argument("--base-url", metavar="URL", action="append",
                     help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vllm serve, "
                          "python -m llama_cpp.server, https://api.openai.com/v1); repeat for a pool of servers "
                          "of the same model: each batch is spread over them (on Ray, each worker gets one)")
    llm.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                     help="environment variable holding the API key (default OPENAI_API_KEY)")
    llm.add_argument("--model", metavar="MODEL", help="the model of every role (each can be overridden below)")
    llm.add_argument("--generator-model", metavar="MODEL", help="writes the questions or wrong answers")
    llm.add_argument("--solver-model", metavar="MODEL", help="solves generated questions (check solve; "
                                                             "default: the generator's model)")
    llm.add_argument("--judge-model", metavar="MODEL", help="picks the misconception (check pick) and scores "
                                                            "items 0-10 (check judge)")
    llm.add_argument("--teacher-model", metavar="MODEL", help="writes the rationale of items that passed the checks")
    llm.add_argument("--model-revision", default="", metavar="REV",
                     help="recorded as the weights' identity of server or vLLM models (e.g. a commit hash); "
                          "part of the request-cache key")
    llm.add_argument("--concurrency", type=positive, metavar="N",
                     help="requests in flight (default 1 for the embedded server, which answers one at a time; 8 otherwise)")
    llm.add_argument("--batch-size", type=positive, metavar="N",
                     help="items per batch: each stage sends a batch's requests together, in cluster order "
                          "(default 4 x concurrency)")
    llm.add_argument("--request-timeout", type=number_in(1, why="seconds"), default=300.0, metavar="S",
                     help="seconds per request attempt before it is retried, at least 1 (default 300)")
    llm.add_argument("--max-retries", type=count, default=6, metavar="N",
                     help="retries of a request on 429, 5xx, timeouts, dropped connections, malformed bodies; "
                          "after that (or 10 failures in a row) the run stops, keeping its rows (default 6)")
    llm.add_argument("--structured-output", choices=STRUCTURED_MODES, default="auto",
                     help="how to send the JSON schema: OpenAI json_schema, llama.cpp json_object+schema, or off "
                          "(parse and validate only); auto tries them in that order (default auto)")
    llm.add_argument("--request-cache", metavar="FILE",
                     help="sqlite file of LLM answers, replayed on re-runs (default STORE/.cache/requests.sqlite)")
    llm.add_argument("--no-request-cache", action="store_true",
                     help="do not record or replay LLM answers (a killed run then recomputes its batch in flight)")
    llm.add_argument("--vllm-gpu-memory", type=float, default=0.85, metavar="F",
                     help="vLLM gpu_memory_utilization (default 0.85)")
    llm.add_argument("--vllm-tensor-parallel", type=positive, default=1, metavar="N",
                     help="vLLM tensor_parallel_size: GPUs per engine (on Ray, each worker then holds N GPUs) "
                          "(default 1)")
    llm.add_argument("--n-ctx", type=number_in(MIN_N_CTX, kind=int, why="a prompt and its answer must fit"),
                     default=4096, metavar="N",
                     help=f"context length of the embedded server in tokens, at least {MIN_N_CTX} (default 4096)")
    llm.add_argument("--threads", type=positive, metavar="N",
                     help="CPU threads of the embedded server (default: one per core; on a machine busy with "
                          "other work use fewer: llama.cpp slows many times over when cores are oversubscribed)")

    x = p.add_argument_group("executor")
    x.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: every stage in this process (default); ray: the item stages as tasks on Ray "
                        "workers (pip install 'misconception-factory[ray]'), this process committing in plan order")
    x.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster to use (e.g. auto, or ray://HOST:10001; default $RAY_ADDRESS, else a local "
                        "Ray started for the run)")
    x.add_argument("--ray-workers", type=positive, metavar="N",
                   help="Ray workers (default: embedded engine, one per --threads CPUs of the cluster, 2 if unset; "
                        "vllm, one per GPU; openai, one per --base-url)")
    x.add_argument("--task-items", type=positive, default=DEFAULT_TASK_ITEMS, metavar="N",
                   help=f"items per Ray task, consecutive items of one cluster (default {DEFAULT_TASK_ITEMS})")

    q = p.add_argument_group("generation and checks")
    q.add_argument("--shots", type=int, default=DEFAULT_SHOTS, metavar="N",
                   help=f"real examples in the many-shot prompt (default {DEFAULT_SHOTS})")
    q.add_argument("--checks", type=_checks_arg, metavar="LIST",
                   help="comma-separated checks, run in this order: "
                        + ", ".join(f"{c.name} ({c.summary or (c.__doc__ or '').strip().split(chr(10))[0]}"
                                    + (f"; {' and '.join(m.name for m in MODES.values() if not m.lacks(c))} mode"
                                       if c.needs else "") + ")" for c in BUILT_IN)
                        + "; a check of your own as module:Class (an llm.stage.Stage subclass importable from the "
                          "Python path); 'none' for no check (default: "
                        + "; ".join(f"{m.name} {','.join(m.checks) or 'none'}" for m in MODES.values()) + ")")
    q.add_argument("--writer", choices=list(WRITERS), default=DEFAULT_WRITER,
                   help="distractor mode: " + "; ".join(f"{n} ({w.summary})" for n, w in WRITERS.items())
                        + f" (default {DEFAULT_WRITER})")
    q.add_argument("--answers", type=number_in(1, MAX_ANSWERS, kind=int), default=1, metavar="N",
                   help="distractor mode: answers the writer draws an item; above 1 the pick judge (--judge-model, "
                        "--pick-k, --pick-candidates) keeps the one likeliest for the target (stage choose) "
                        "(default 1; measured in docs/synth.md)")
    q.add_argument("--rationale", choices=RATIONALES, default="working",
                   help="distractor mode: the Rationale column is the writer's one-line working, or the teacher "
                        "writes it (default working)")
    for cls, option in check_options(plugins):  # each check's own settings (factory.checks)
        shown = option.help if option.default is None or "(default" in option.help else \
            f"{option.help} (default {option.default:g})" if isinstance(option.default, float) else \
            f"{option.help} (default {option.default})"
        q.add_argument(option.flag, *option.aliases, dest=_dest(cls, option), type=argparse_type(option.parse),
                       default=option.default, metavar=option.metavar, help=shown)
    q.add_argument("--max-attempts", type=positive, default=3, metavar="N",
                   help="LLM answers tried per step when the output is invalid or breaks a rule "
                        "(a copy, options not distinct) (default 3)")
    q.add_argument("--near-duplicate", type=number_in(0, 1), default=None, metavar="COS",
                   help="reject questions at or above this cosine similarity to a real or earlier one "
                        f"(default {NEAR_DUPLICATE_THRESHOLD})")

    c = p.add_argument_group("clustering (HDBSCAN on misconception-name embeddings)")
    defaults = ClusterParams()
    c.add_argument("--min-cluster-size", type=positive, default=defaults.min_cluster_size, metavar="N",
                   help=f"HDBSCAN min_cluster_size (default {defaults.min_cluster_size})")
    c.add_argument("--attach-threshold", type=number_in(-1, 1, why="a cosine similarity"),
                   default=defaults.attach_threshold, metavar="COS",
                   help="a noise point joins its nearest cluster at this cosine similarity or more, else it "
                        f"is a singleton (default {defaults.attach_threshold})")
    return p


def _dest(cls, option) -> str:
    return f"check_{cls.name}_{option.field}".replace("-", "_")


def check_settings(args: argparse.Namespace) -> dict[str, dict]:
    """Each check's options, by check name, as the command line set them (defaults included)."""
    out: dict[str, dict] = {}
    for cls, option in check_options(getattr(args, "plugins", [])):
        out.setdefault(cls.name, {})[option.field] = getattr(args, _dest(cls, option))
    return out


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    clusters = None
    if args.cluster and "all" not in args.cluster:
        clusters = [int(c) for c in args.cluster]
    misconceptions = None
    if args.misconception or args.misconceptions:
        misconceptions = list(args.misconception or [])
        if args.misconceptions:
            misconceptions += read_misconception_file(args.misconceptions)
    backend = BackendOptions(
        engine=args.engine or ("openai" if args.base_url else "embedded"), base_url=args.base_url,
        api_key_env=args.api_key_env, revision=args.model_revision, n_ctx=args.n_ctx, threads=args.threads,
        concurrency=args.concurrency, timeout=args.request_timeout, max_retries=args.max_retries,
        structured=args.structured_output,
        vllm_args={"gpu_memory_utilization": args.vllm_gpu_memory,
                   **({"tensor_parallel_size": args.vllm_tensor_parallel} if args.vllm_tensor_parallel > 1 else {})})
    cfg = SynthConfig(
        data_dir=resolve_data_dir(args.data_dir), store=Path(args.store), clusters=clusters,
        misconceptions=misconceptions, fill_gaps=args.fill_gaps, mode=args.mode, checks=args.checks,
        rationale=args.rationale,
        writer=args.writer, answers=args.answers,
        per_misconception=args.per_misconception, limit=args.limit, seed=args.seed,
        generator_model=args.generator_model or args.model, judge_model=args.judge_model or args.model,
        teacher_model=args.teacher_model or args.model, solver_model=args.solver_model or args.model,
        shots=args.shots, min_real_rows=args.min_real_rows, check_settings=check_settings(args),
        max_attempts=args.max_attempts, backend=backend, batch_size=args.batch_size,
        request_cache=not args.no_request_cache,
        request_cache_file=Path(args.request_cache) if args.request_cache else None,
        cluster=ClusterParams(min_cluster_size=args.min_cluster_size, attach_threshold=args.attach_threshold),
        executor=args.executor, ray_address=args.ray_address, ray_workers=args.ray_workers,
        task_items=args.task_items, progress=not args.no_progress)
    if args.near_duplicate is not None:
        cfg.near_duplicate_threshold = args.near_duplicate
    if args.hide_fold is not None:
        cfg.hide_fold = FoldSpec(FOLD_BY[args.fold_by], args.folds, args.fold_seed, args.hide_fold)
    return cfg


def run(args: argparse.Namespace) -> int:
    import factory  # heavy imports after argument checks, so --help is fast

    try:
        config = config_from_args(args)
        if args.list_clusters:
            factory.list_clusters(factory.prepare(config), config.min_real_rows)
            return 0
        if args.misconception_cards:
            record = factory.write_cards(config)
            return 0 if record["status"] in ("complete", "nothing to do") else 1
        if args.push_to_hub:  # check the repository id, the token and the Hub before the run, push after it
            check_access(args.push_to_hub)
        record = factory.run(config)
    except factory.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.push_to_hub and record["status"] == "complete":
        try:
            push_version(config.store, record["id"], args.push_to_hub)
        except PublishError as e:
            raise PublishError(f"{e} (the version is kept in {config.store}: push it later with python -m "
                               f"pipelines.publish --store {config.store} --version {record['id']} "
                               f"--repo {args.push_to_hub})") from None
    return 0 if record["status"] in ("complete", "nothing to do") else 1


def main(argv: list[str] | None = None) -> int:
    try:
        plugins = _checks_named(argv)
        parser = build_parser(plugins)
    except CheckError as e:
        print(f"error: --checks: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.plugins = plugins
    if args.misconception_cards:
        if args.cluster and "all" not in args.cluster:
            parser.error("--misconception-cards writes one card per misconception: choose them with --misconception "
                         "or --misconceptions, not --cluster (none of these: every misconception)")
        if args.fill_gaps:
            parser.error("--fill-gaps chooses targets for rows; --misconception-cards resumes on its own")
        if args.push_to_hub or args.list_clusters:
            parser.error("--misconception-cards: no --push-to-hub or --list-clusters (push cards with "
                         "python -m pipelines.publish, which sends them with a version)")
    elif not args.list_clusters and not (args.cluster or args.misconception or args.misconceptions):
        parser.error("choose what to make: --cluster ID (repeatable) or --cluster all, --misconception ID, "
                     "--misconceptions FILE; or --list-clusters")
    if args.shots < 0:
        parser.error("--shots must be 0 or more")
    if args.hide_fold is not None and not 0 <= args.hide_fold < args.folds:
        parser.error(f"--hide-fold must be in 0..{args.folds - 1} (--folds {args.folds})")
    why = next((w for w in map(MODES[args.mode].lacks, map(check_class, args.checks or ())) if w), None)
    if why is not None:
        parser.error(why)
    if args.writer != DEFAULT_WRITER and args.mode != "distractor":
        parser.error(f"--writer {args.writer} is for --mode distractor")
    if args.rationale != "working" and args.mode != "distractor":
        parser.error(f"--rationale {args.rationale} is for --mode distractor"
                     + (" (question mode's rationale is always the teacher's)" if args.mode == "question" else ""))
    if args.answers > 1 and args.mode != "distractor":
        parser.error(f"--answers {args.answers} is for --mode distractor")
    if (args.ray_address or args.ray_workers) and args.executor != "ray":
        parser.error("--ray-address and --ray-workers are for --executor ray")
    if args.engine == "embedded" and args.base_url:
        parser.error("--engine embedded starts its own llama.cpp server: drop --base-url, or use --engine openai")
    return run_main(run, args, USER_ERRORS, "interrupted: re-run the same command to continue where it stopped")


if __name__ == "__main__":
    sys.exit(main())
