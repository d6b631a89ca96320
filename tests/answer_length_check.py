"""A check of a user's own, added on the command line (``--checks tests.answer_length_check:AnswerLength``):
one class, no registry entry; its option becomes the flag ``--answer-length-max``."""
from llm.stage import Option, Stage, number


class AnswerLength(Stage):
    name = "answer-length"
    columns = {"AnswerLength": "int64"}
    options = (Option("max_chars", "--answer-length-max", "check answer-length: the longest wrong answer kept",
                      1000, number(int, 1), "N"),)

    def __init__(self, max_chars: int = 1000):
        self.max_chars = max_chars

    def settings(self) -> dict:
        return {"max_chars": self.max_chars}

    def run(self, items, ctx):
        for it in items:
            it.row["AnswerLength"] = len(it.row["IncorrectAnswerText"])
            if it.row["AnswerLength"] > self.max_chars:
                it.reject = ctx.reject(self.name, f"answer longer than {self.max_chars} characters")
            else:
                it.passed(self.name)
