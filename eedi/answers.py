"""Do two answers say the same thing?  The option rules, the solver check and the distractor rules ask.

Both answers are normalised (LaTeX delimiters, ``\\text{}`` and ``\\boxed{}``, spacing, degree signs and trailing units
dropped, ``\\frac{a}{b}`` -> ``(a)/(b)``, ``\\times`` -> ``*``, ``\\div`` -> ``/``, mixed numbers
``2\\frac{1}{3}`` -> ``2+1/3``, ``50%`` -> ``50/100``, thousands separators and words after a number
(``4 biscuits``), a leading ``x =`` or ``\\Delta =`` and a trailing ``\\ldots`` removed, ``cm²`` read as
``cm^2``, an inequality's sides put in one order); where both then read as numbers (integers, decimals, fractions, percentages;
via sympy) they are compared by value, otherwise as normalised strings.  So ``\\( \\frac{1}{2} \\)``, ``0.5``, ``1/2`` and ``50%`` are the same,
and ``x=3`` equals ``3``.

Small models often wrap an answer in a sentence ("The gradient is 5."); ``stated_answer`` takes the
value out, and ``words`` counts an answer's words, so that a sentence where a value belongs can be told
apart from an answer of the question's own form.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

_DELIMITERS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$")
_BRACED = r"\{(?P<value>[^{}]*(?:\{[^{}]*\}[^{}]*)*)\}"  # a {group}, one level of {} allowed inside
_TEXT = re.compile(r"\\(?:text|mathrm|rm|mathbf|textbf|operatorname|boxed)\s*" + _BRACED)
_BOXED = re.compile(r"\s*(?:\\\(|\$)?\s*\\boxed\s*" + _BRACED + r"\s*(?:\\\)|\$)?\s*")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_MIXED = re.compile(r"(\d)\s*\((\d+)\)/\((\d+)\)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_UNITS = re.compile(r"(?<=[\d)])\s*(?:cm|mm|km|m|kg|g|ml|l|litres?|degrees?|minutes?|mins?|hours?|"
                    r"seconds?|s|p|pence|pounds?|units?|squared|cubed)\s*(?:\^?\{?[23]\}?)?$")
_COUNTED = re.compile(r"(?<=\d)\s+[a-z]{3,}(?:\s+[a-z]{3,})*$")  # "4 biscuits", "9 kilograms": the number counts
_LEAD_VAR = re.compile(r"^(?:[a-z]|\\[a-z]+)\s*=\s*(?=[-+\d(.])")  # x = 3, \Delta = -26 (lower-cased)
_ELLIPSIS = re.compile(r"\s*(?:\\ldots|\\dots|\.\.\.|…)$")  # 2.5505 \ldots: the digits shown are the answer
_NUMERIC = re.compile(r"^[-+*/().\d\s^]+$")
# "The answer is 6.", "So the gradient would be \( 5 \)": a subject, a verb of being, then a short value
_STATED = re.compile(r"^(?:so,?\s+|therefore,?\s+)?(?:the|a|an|my|their|his|her)\s[^=]*?\b"
                     r"(?:is|are|equals|would be|will be|could be|should be|=)\s+(?P<value>.+?)\s*\.?$",
                     re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")  # a word of two letters or more, not a LaTeX command
STATED_MAX_WORDS = 3  # a stated value longer than this is left as the sentence it is


def words(answer: str) -> int:
    """How many words (two letters or more, LaTeX commands not counted) an answer has."""
    return len(_WORD.findall(str(answer)))


def stated_answer(answer: str) -> str:
    """The value a sentence answer states ("The answer is 6." -> "6", a number or LaTeX of a few words at
    most), or the number that arithmetic ends in ("3 \\times 3 = 9" -> "9"), or what a whole-answer ``\\boxed{}``
    holds; any other answer unchanged."""
    boxed = _BOXED.fullmatch(str(answer))
    if boxed:
        answer = boxed.group("value").strip()
    left, equals, right = str(answer).rpartition("=")
    if equals and numeric_value(right) is not None and numeric_value(left) is not None:
        return _DELIMITERS.sub("", right).strip()  # working that ends in its value: "\\frac{1}{3} \\times 27 = 9" states 9
    m = _STATED.match(str(answer).strip())
    if not m:
        return answer
    value = m.group("value").strip()
    is_value = re.search(r"\d|\\|\$", value) and words(value) <= STATED_MAX_WORDS
    return value if is_value else answer  # "The angle is acute" stays: a word answer may be an option's form


def normalise(answer: str) -> str:
    """A canonical text form of an answer (lower case, no spaces, LaTeX reduced)."""
    s = _DELIMITERS.sub("", str(answer)).strip()
    s = _TEXT.sub(r"\1", s)
    s = s.replace("~", " ").replace("²", "^2").replace("³", "^3")  # \mathrm{~cm}^{2} and cm² alike
    for _ in range(3):  # nested fractions
        s = _FRAC.sub(r"(\1)/(\2)", s)
    s = _FRAC_SHORT.sub(r"(\1)/(\2)", s)
    s = s.replace("\\times", "*").replace("×", "*").replace("\\div", "/").replace("÷", "/")
    s = s.replace("\\cdot", "*").replace("\\left", "").replace("\\right", "").replace("−", "-")
    s = re.sub(r"\^\s*\{?\s*(?:\\circ|\\degree|degrees?)\s*\}?|°|\\degree|\\circ", "", s)  # 18^{\text{degree}}
    s = s.replace("£", "").replace("\\%", "%").replace("\\,", "").replace("\\!", "").replace("\\ ", " ")
    s = s.replace("\\;", "").replace("\\:", "")
    s = _THOUSANDS.sub("", s).strip().lower()
    s = _UNITS.sub("", s).strip()
    s = _COUNTED.sub("", s)
    s = _LEAD_VAR.sub("", s)
    s = _ELLIPSIS.sub("", s)
    s = _MIXED.sub(r"\1+(\2)/(\3)", s)
    s = re.sub(r"(\d+(?:\.\d+)?)\s*%$", r"(\1)/100", s)
    return _one_way_inequality(re.sub(r"\s+", "", s))


_INEQUALITY = re.compile(r"^([^<>=]+)(<=|>=|<|>)([^<>=]+)$")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _one_way_inequality(s: str) -> str:
    """``-2>p`` and ``p<-2`` as one form: an inequality's sides in a fixed order, its sign flipped to match."""
    s = s.replace("\\leq", "<=").replace("\\geq", ">=").replace("\\le", "<=").replace("\\ge", ">=")
    s = s.replace("≤", "<=").replace("≥", ">=")
    m = _INEQUALITY.match(s)
    if not m:
        return s
    left, sign, right = m.groups()
    return f"{right}{_FLIP[sign]}{left}" if right < left else s


@lru_cache(maxsize=4096)
def numeric_value(answer: str) -> float | None:
    """The answer's value when it is a plain number or arithmetic of numbers, else None."""
    s = normalise(answer)
    if not s or not _NUMERIC.match(s) or len(s) > 60:
        return None
    try:
        import sympy

        value = sympy.sympify(s.replace("^", "**"), rational=True)
        return float(value) if value.is_number and value.is_real else None
    except (sympy.SympifyError, TypeError, ValueError, ZeroDivisionError, SyntaxError, AttributeError,
            OverflowError, RecursionError):
        return None


def same_answer(a: str, b: str) -> bool:
    """True when the two answers are equal by value (numbers) or by normalised text. A decimal shown cut short
    (``2.5505 \\ldots``) equals any number that begins with its digits (``2.550526``)."""
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return bool(na)
    va, vb = numeric_value(a), numeric_value(b)
    if va is None or vb is None:
        return False
    if abs(va - vb) <= 1e-9 * max(1.0, abs(va), abs(vb)):
        return True
    return _extends(na, a, vb) or _extends(nb, b, va)


def _extends(shown: str, raw: str, value: float) -> bool:
    """Whether ``value`` begins with the digits of ``shown``, a decimal written with a trailing ellipsis."""
    if not _ELLIPSIS.search(_DELIMITERS.sub("", str(raw)).strip()) or not re.fullmatch(r"-?\d+\.\d+", shown):
        return False
    places = len(shown.split(".")[1])
    cut = math.floor(abs(value) * 10 ** places + 1e-6) / 10 ** places
    return (value < 0) == shown.startswith("-") and abs(cut - abs(float(shown))) < 0.5 / 10 ** places


_NOISE = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$|\s+")


def loose(answer: str) -> str:
    """Lower case without whitespace and LaTeX delimiters (the option rules' comparison)."""
    return _NOISE.sub("", answer).lower()


def check_options(correct: str, targeted: str, others: list[str] | tuple[str, ...]) -> str | None:
    """The reason a generated question's options fail the rules, or None: the targeted wrong answer
    differs from the correct one (reported on its own: the commonest failure), and all options are distinct."""
    correct_n = loose(correct)
    if loose(targeted) == correct_n:
        return "targeted wrong answer equals the correct answer"
    options = [correct_n, loose(targeted), *map(loose, others)]
    if len(set(options)) < len(options):
        return "options not distinct"
    return None
