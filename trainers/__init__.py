"""Trainers that consume the factory's dataset versions: a retriever and an LLM reranker.

One job per module (loading and using the models is ``rankers``; splits and metrics are ``eedi``):

- ``data``: real rows + chosen synthetic versions -> training examples (the mixing rule).
- ``retriever``: sentence-transformers bi-encoder trained with in-batch + mined hard negatives.
- ``reranker``: an LLM that scores one candidate at a time (logit Yes - logit No), LoRA.
- ``card``: the training card written next to each saved model.
- ``job``: one training job (``TrainJob`` -> ``train_job`` -> ``TrainResult``): split, select, mix, train, cards.
- ``lineage``: what a run resumed from a previous one inherits and must match.
- ``merge``: the weighted mean of LoRA adapters on one base.
"""


class TrainError(Exception):
    """A training choice or input that cannot be honoured. Message: one line."""
