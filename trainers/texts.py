"""Moved to ``models.texts``; this re-export stays only until judges/roundtrip.py imports it from there."""
from models.texts import doc_text, query_text  # noqa: F401
