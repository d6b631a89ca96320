"""Cluster misconceptions by the embeddings of their names (HDBSCAN), dropping none.

HDBSCAN labels points in no dense region as noise (-1); with
``min_cluster_size=3`` that is roughly 40% of the 2,587 misconceptions.  The
noise rule: a noise point joins the HDBSCAN cluster whose centroid is most
similar to it when that cosine similarity is at least ``attach_threshold``;
otherwise it becomes a singleton cluster of its own.  Centroids are those of
the HDBSCAN clusters before any noise joins, so the order of noise points does
not matter.

Cluster ids are renumbered so that they do not depend on HDBSCAN's internal
label order: clusters are sorted by their smallest MisconceptionId.  HDBSCAN
itself has no random state, so the result is a pure function of the
embeddings and the parameters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterParams:
    min_cluster_size: int = 3
    min_samples: int = 1
    selection: str = "leaf"  # HDBSCAN cluster_selection_method: "leaf" gives many tight clusters
    attach_threshold: float = 0.6  # noise joins its nearest cluster at cosine >= this

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Clustering:
    params: ClusterParams
    cluster_of: dict[int, int]  # MisconceptionId -> ClusterId
    members: dict[int, tuple[int, ...]]  # ClusterId -> MisconceptionIds, ascending
    hdbscan_clusters: int
    noise: int  # points HDBSCAN left as noise
    noise_attached: int  # of which joined a cluster; the rest are singletons

    def stats(self) -> dict:
        return {"clusters": len(self.members), "hdbscan_clusters": self.hdbscan_clusters,
                "noise": self.noise, "noise_attached": self.noise_attached,
                "singletons": self.noise - self.noise_attached}


def cluster_misconceptions(ids: list[int], vectors: np.ndarray, params: ClusterParams) -> Clustering:
    """Give every misconception a cluster. ``vectors`` are L2-normalised rows aligned with ``ids``."""
    import hdbscan

    if len(ids) != len(vectors):
        raise ValueError("ids and vectors differ in length")
    # On unit vectors, euclidean distance is a monotone function of cosine distance.
    labels = hdbscan.HDBSCAN(
        min_cluster_size=params.min_cluster_size, min_samples=params.min_samples,
        metric="euclidean", cluster_selection_method=params.selection,
        core_dist_n_jobs=1,
    ).fit_predict(vectors.astype(np.float64))

    found = sorted(set(labels.tolist()) - {-1})
    groups: dict[int, list[int]] = {label: [] for label in found}
    noise_rows = []
    for row, label in enumerate(labels.tolist()):
        (groups[label].append(row) if label != -1 else noise_rows.append(row))

    attached = 0
    if found and noise_rows:
        centroids = np.stack([vectors[groups[label]].mean(axis=0) for label in found])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        sims = vectors[noise_rows] @ centroids.T
        best = sims.argmax(axis=1)
        singles = []
        for row, b, s in zip(noise_rows, best.tolist(), sims.max(axis=1).tolist()):
            if s >= params.attach_threshold:
                groups[found[b]].append(row)
                attached += 1
            else:
                singles.append(row)
    else:
        singles = noise_rows

    member_lists = [sorted(ids[r] for r in rows) for rows in groups.values()]
    member_lists += [[ids[r]] for r in singles]
    member_lists.sort(key=lambda m: m[0])
    members = {cid: tuple(m) for cid, m in enumerate(member_lists)}
    cluster_of = {mid: cid for cid, m in members.items() for mid in m}
    return Clustering(params=params, cluster_of=cluster_of, members=members,
                      hdbscan_clusters=len(found), noise=len(noise_rows), noise_attached=attached)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int, exclude: set[int] = frozenset()) -> list[int]:
    """Row indices of the ``k`` rows most similar to ``query``, ties broken by row index."""
    sims = vectors @ query
    order = np.lexsort((np.arange(len(sims)), -sims))
    return [int(i) for i in order if int(i) not in exclude][:k]
