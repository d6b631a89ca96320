"""Reading an LLM's answer, which is untrusted input: the first JSON object in it, LaTeX repaired, and the
one-line reason when it does not fit (:class:`ParseError`). Generators and judges all parse through here."""
from __future__ import annotations

import json
import math
import re

from pydantic import ValidationError


class ParseError(ValueError):
    """The LLM's answer does not fit the expected shape (message: the reason)."""


# LLMs often write LaTeX unescaped inside JSON strings: "\frac" then decodes as a form feed followed by
# "rac", "\boxed" as a backspace, "\rightarrow" as a carriage return; "\sqrt" and "\(" are invalid JSON.
# So a backslash is LaTeX unless it starts a JSON escape a model means: \" \\ \/, "\n" and "\t" (a new
# line, a tab: "\nThe") unless a LaTeX command follows ("\neq", "\ngeq", "\times"), and "\u" with four hex digits.
_LATEX = re.compile(
    r'(?<!\\)\\(?=[^"\\/ntu]|u(?![0-9a-fA-F]{4})|'
    r"(?:neq|ne|neg|ngeq|nleq|ngtr|nless|not|notin|nabla|newline|times|text|textbf|textit|textrm|tfrac|theta|tau|tilde|to|"
    r"therefore|top|tan|triangle)(?![a-zA-Z]))")


def escape_latex(text: str) -> str:
    return _LATEX.sub(r"\\\\", text)


def parse_json_object(text: str) -> dict:
    """The first JSON object in ``text`` (tolerating code fences or chatter around it)."""
    start = text.find("{")
    if start < 0:
        raise ParseError("no JSON object in output")
    try:
        value, _ = json.JSONDecoder().raw_decode(escape_latex(text[start:]))
    except json.JSONDecodeError as e:
        raise ParseError(f"invalid JSON: {e.msg}") from None
    if not isinstance(value, dict):
        raise ParseError("invalid JSON: not an object")
    return value


def validation_reason(e: ValidationError) -> str:
    """pydantic's first complaint as one short line: ``invalid field: <field> <message>``."""
    first = e.errors()[0]
    field = ".".join(str(x) for x in first.get("loc", ())) or "output"
    message = first.get("msg", "invalid").removeprefix("Value error, ")
    return f"invalid field: {field} {message}"


def parse_model(model, text: str):
    """The first JSON object of ``text`` validated into the pydantic ``model``; ParseError otherwise."""
    try:
        return model.model_validate(parse_json_object(text))
    except ValidationError as e:
        raise ParseError(validation_reason(e)) from None


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def letter_probabilities(response, k: int) -> list[float]:
    """P(letter) for the first k letters, from the first answer token's ``top_logprobs`` renormalised over
    them (letters absent from the top list get 0), else 1 for the letter the answer wrote (ParseError if none)."""
    letters = LETTERS[:k]
    best: dict[str, float] = {}
    for token, logprob in response.top_logprobs:
        t = token.strip().strip(".):").upper()
        if len(t) == 1 and t in letters:
            best[t] = max(best.get(t, -math.inf), logprob)
    if best:
        top = max(best.values())
        weights = [math.exp(best[x] - top) if x in best else 0.0 for x in letters]
    else:
        written = response.text.strip().strip(".):").upper()[:1]
        if written not in letters or not written:
            raise ParseError(f"no candidate letter in the answer: {response.text[:40]!r}")
        weights = [1.0 if x == written else 0.0 for x in letters]
    total = sum(weights)
    return [w / total for w in weights]
