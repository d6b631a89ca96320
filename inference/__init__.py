"""Rank misconceptions for (question, wrong answer) rows with trained or base models: retrieve, rerank, boost."""
from inference.ranking import ENSEMBLES, KINDS, Ensemble, Reranker, Retriever, ServedReranker, boosted, rank_rows

__all__ = ["ENSEMBLES", "KINDS", "Ensemble", "Reranker", "Retriever", "ServedReranker", "boosted", "rank_rows"]
