"""Rank misconceptions for (question, wrong answer) rows with trained or base models: retrieve, rerank, boost."""
from inference.ranking import DEFAULT_FUSE, ENSEMBLES, KINDS, Ensemble, Memoized, Reranker, Retriever, ServedReranker, boosted, rank_rows

__all__ = ["DEFAULT_FUSE", "ENSEMBLES", "KINDS", "Ensemble", "Memoized", "Reranker", "Retriever", "ServedReranker", "boosted", "rank_rows"]
