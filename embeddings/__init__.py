"""Sentence embeddings (offline, cached) and what is computed from them: misconception clusters and nearest neighbours."""
from embeddings.clusters import ClusterParams, Clustering, cluster_misconceptions, nearest
from embeddings.embedder import DEFAULT_EMBEDDER, Embedder, EmbedderError

__all__ = ["DEFAULT_EMBEDDER", "ClusterParams", "Clustering", "Embedder", "EmbedderError",
           "cluster_misconceptions", "nearest"]
