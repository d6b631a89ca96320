"""Trainers for the retriever and the reranker (to come: see the trainers issue)."""
