"""Loading and running the trained (or base) models: the retriever, the reranker, and the texts they read.

One job per module:

- ``texts``: how a row becomes the retriever's query and a misconception its document.
- ``retriever``: load a retriever base (sentence-transformers folder, or decoder-LLM folder with
  last-token pooling), encode, and the ``Index`` of misconception names.
- ``reranker``: resolve and load the reranker's base LLM and tokenizer, build its prompts, score
  (logit Yes - logit No), and load a trained adapter.
- ``card``: read the training card saved next to a trained model (``trainers.card`` writes it).

Training lives in ``trainers``; ranking a question set in ``inference``.
"""


class ModelError(Exception):
    """A model that cannot be found, loaded or used as asked. Message: one line."""
