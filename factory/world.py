"""What every run derives from the data: the visible real rows, embeddings, clusters, and the targets."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from eedi import EediData, load_eedi
from embeddings import Clustering, Embedder, cluster_misconceptions
from factory.config import SynthConfig
from llm import cache_dir


class ConfigError(Exception):
    """A command-line choice that cannot be honoured (e.g. an unknown cluster id). One line."""


@dataclass
class World:
    data: EediData  # with --hide-fold: the visible rows only
    embedder: Embedder
    ids: list[int]  # MisconceptionIds, ascending; rows of ``vectors``
    vectors: np.ndarray  # misconception-name embeddings
    clustering: Clustering
    real_rows: dict[int, int]  # visible rows per misconception
    hidden: set[int] | None = None  # --hide-fold: the misconceptions of the hidden rows
    hidden_questions: frozenset[str] = frozenset()  # --hide-fold: QuestionIds with a hidden row

    def targets(self, min_real_rows: int) -> set[int]:
        wanted = {mid for mid, n in self.real_rows.items() if n < min_real_rows}
        return wanted if self.hidden is None else wanted & self.hidden

    def chosen_targets(self, config: SynthConfig, warn: TextIO = sys.stderr) -> set[int]:
        """The target rule (``--min-real-rows``, ``--hide-fold``), intersected with ``--misconception(s)``.

        An id that is not in misconception_mapping.csv is an error; a listed misconception that is not a
        target (it has enough real rows, or lies outside the hidden fold) is skipped with one warning line.
        """
        wanted = self.targets(config.min_real_rows)
        if config.misconceptions is None:
            return wanted
        listed = list(dict.fromkeys(config.misconceptions))
        unknown = [m for m in listed if m not in self.data.misconceptions]
        if unknown:
            raise ConfigError(f"misconception {unknown[0]} is not in misconception_mapping.csv"
                              + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        not_targets = [m for m in listed if m not in wanted]
        if not_targets:
            k = config.min_real_rows
            why = ("no real row" if k == 1 else f"fewer than {k} real rows") + (", in the hidden fold" if self.hidden else "")
            shown = ", ".join(map(str, not_targets[:10])) + (" ..." if len(not_targets) > 10 else "")
            warn.write(f"warning: {len(not_targets)} of {len(listed)} listed misconceptions are not targets "
                       f"(a target has {why}), skipped: {shown}\n")
        chosen = wanted.intersection(listed)
        if not chosen:
            raise ConfigError(f"none of the {len(listed)} listed misconceptions is a target")
        return chosen


def prepare(config: SynthConfig) -> World:
    """Load the data, embed and cluster the misconceptions.

    With ``config.hide_fold`` the fold's real rows are removed before anything uses them:
    shots, base questions and near-duplicate references come from the other rows only (a question
    with any hidden row is never a base question), and the targets are the fold's misconceptions
    left without rows (an evaluation stand-in for real misconceptions that have none).
    """
    data = load_eedi(config.data_dir)
    hidden, hidden_questions = None, frozenset()
    if config.hide_fold is not None:
        visible, held = config.hide_fold.split(data.train_pairs)
        data = EediData(misconceptions=data.misconceptions, train_pairs=visible)
        hidden = {p.MisconceptionId for p in held}
        hidden_questions = frozenset(p.QuestionId for p in held)
    embedder = Embedder(cache=cache_dir())
    ids = sorted(data.misconceptions)
    vectors = embedder.encode_cached([data.misconceptions[m] for m in ids], "misconceptions")
    clustering = cluster_misconceptions(ids, vectors, config.cluster)
    return World(data, embedder, ids, vectors, clustering, data.real_row_counts(), hidden, hidden_questions)


def _field(text: str) -> str:
    """A value for one tab-separated field: backslash, tab, newline and carriage return escaped."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def list_clusters(world: World, min_real_rows: int, out: TextIO = sys.stdout, names: int = 3) -> None:
    """One tab-separated line per cluster; names are escaped (\\t, \\n, \\r, \\\\) so each stays one field."""
    wanted = world.targets(min_real_rows)
    stats = world.clustering.stats()
    out.write(f"# {stats['clusters']} clusters of {len(world.ids)} misconceptions: {stats['hdbscan_clusters']} "
              f"from HDBSCAN, {stats['noise']} noise points of which {stats['noise_attached']} joined a "
              f"cluster and {stats['singletons']} are singletons; {len(wanted)} targets\n")
    out.write("cluster\tsize\treal_rows\ttargets\tnames\n")
    for cid, m in world.clustering.members.items():
        rows = sum(world.real_rows[x] for x in m)
        shown = " | ".join(_field(world.data.misconceptions[x][:60]) for x in m[:names])
        out.write(f"{cid}\t{len(m)}\t{rows}\t{len(wanted.intersection(m))}\t{shown}\n")
