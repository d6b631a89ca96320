"""A faithful in-process stand-in for a served judge: the ``llm.Backend`` interface answering every request
with the first answer token's top logprobs, as an OpenAI-compatible server does; it keeps what it was asked."""
from llm import ChatResponse


class LetterServer:
    identity = None

    def __init__(self, top_logprobs: tuple[tuple[str, float], ...]):
        self.top_logprobs = top_logprobs  # (token, logprob), best first: the answer is the first token
        self.requests = []

    def chat_many(self, requests):
        self.requests += requests
        for i, _ in enumerate(requests):
            yield i, ChatResponse(self.top_logprobs[0][0], 100, 1, top_logprobs=self.top_logprobs)
