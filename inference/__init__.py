"""Rank misconceptions with trained models (retrieve, rerank, boost), and measure rankings honestly."""
from inference.ranking import Reranker, Retriever, boosted, rank_rows

__all__ = ["Reranker", "Retriever", "boosted", "rank_rows"]
