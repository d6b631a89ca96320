"""Rank misconceptions for (question, wrong answer) rows with trained or base models: retrieve, rerank, boost."""
from inference.ranking import Reranker, Retriever, boosted, rank_rows

__all__ = ["Reranker", "Retriever", "boosted", "rank_rows"]
