"""Trainers that consume the factory's dataset versions: a retriever and an LLM reranker.

One job per module:

- ``texts``: the query text (question, answers, optional rationale) and the document text
  (the misconception name), the same for real pairs and synthetic store rows.
- ``splits``: grouped validation holdout and folds (by misconception or by construct).
- ``metrics``: MAP@k and recall@k over ranked misconception ids.
- ``data``: real rows + chosen synthetic versions -> training examples (the mixing rule).
- ``retriever``: sentence-transformers bi-encoder trained with in-batch + mined hard negatives.
- ``reranker``: an LLM that scores one candidate at a time (logit Yes - logit No), LoRA.
- ``card``: the training card written next to each saved model.
"""


class TrainError(Exception):
    """A training choice or input that cannot be honoured. Message: one line."""
