"""Rank misconceptions for (question, wrong answer) rows with trained or base models: retrieve, rerank, boost."""
from inference.ranking import KINDS, Reranker, Retriever, ServedReranker, boosted, rank_rows

__all__ = ["KINDS", "Reranker", "Retriever", "ServedReranker", "boosted", "rank_rows"]
