"""The retriever: a bi-encoder from a (question, wrong answer) to its misconception, loaded and used.

Bases (``load_encoder``):

- a sentence-transformers folder (default: the embedded all-MiniLM-L6-v2);
- a plain transformers folder of a decoder LLM: built as Transformer + last-token
  pooling + normalisation.

``Index``: the misconception names (``rankers.texts.doc_text``) encoded by a model, and the
top-k names for queries by cosine similarity.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rankers import ModelError
from rankers.texts import doc_text


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(base: str | Path | None, max_seq_length: int | None = None):
    """(SentenceTransformer, kind, path) for a sentence-transformers folder or a decoder-LLM folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers.utils import logging as hf_logging

    from embeddings.embedder import EmbedderError, default_model_path

    hf_logging.disable_progress_bar()  # no "Loading weights" or "Writing model shards" bars

    try:
        path = Path(base) if base else default_model_path()
    except EmbedderError as e:
        raise ModelError(str(e)) from None
    if (path / "modules.json").is_file():
        model, kind = SentenceTransformer(str(path), device=device()), "sentence-transformers"
    elif (path / "config.json").is_file():
        encoder = Transformer(str(path), max_seq_length=max_seq_length)
        tokenizer = encoder.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="lasttoken")
        model = SentenceTransformer(modules=[encoder, pooling, Normalize()], device=device())
        kind = "llm, last-token pooling"
    else:
        raise ModelError(f"{path}: not a sentence-transformers or transformers model folder "
                         "(no modules.json or config.json)")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model, kind, path


class Index:
    """Misconception names encoded by a model; ranks queries against them.

    ``vectors``: the names already encoded by this model (e.g. read from a cache).
    """

    def __init__(self, model, misconceptions: dict[int, str], batch_size: int = 64,
                 vectors: np.ndarray | None = None):
        self.model, self.batch_size = model, batch_size
        self.ids = sorted(misconceptions)
        self.row_of = {m: i for i, m in enumerate(self.ids)}
        self.names = [doc_text(misconceptions[m]) for m in self.ids]
        self.vectors = self.encode(self.names) if vectors is None else vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def search(self, queries: list[str] | np.ndarray, k: int, exclude: list[int] | None = None,
               bonus: np.ndarray | None = None) -> list[tuple[list[int], list[float]]]:
        """Top-k (misconception ids, cosine scores) per query (texts, or vectors already encoded), best first.

        ``exclude[i]`` is left out of row i; ``bonus`` (one value per misconception, in
        ``self.ids`` order) is added to every query's scores before ranking.
        """
        out = []
        vectors = queries if isinstance(queries, np.ndarray) else self.encode(queries)
        for start in range(0, len(queries), 1024):
            sims = vectors[start:start + 1024] @ self.vectors.T
            if bonus is not None:
                sims += bonus[None, :]
            if exclude is not None:
                for row, mid in enumerate(exclude[start:start + 1024]):
                    sims[row, self.row_of[mid]] = -np.inf
            top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
            for row, cols in enumerate(top):
                cols = cols[np.argsort(-sims[row, cols], kind="stable")]
                out.append(([self.ids[c] for c in cols], sims[row, cols].tolist()))
        return out

    def rank(self, queries: list[str], k: int, exclude: list[int] | None = None) -> list[list[int]]:
        """Top-k misconception ids per query, best first; ``exclude[i]`` is left out of row i."""
        return [ids for ids, _ in self.search(queries, k, exclude)]
