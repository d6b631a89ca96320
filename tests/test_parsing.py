import json

import pytest

from generators import QuestionGenerator, RationaleWriter, Target
from factory import Item
from judges import RubricJudge
from llm.parsing import ParseError, parse_json_object

TARGET = Target(1, "Believes you add the denominators when adding fractions", 0, 0, 1, ())
GOOD = {
    "subject": "Adding Fractions", "construct": "Add fractions with different denominators",
    "question": r"Calculate: \( \frac{1}{2}+\frac{1}{3} \)", "correct_answer": r"\( \frac{5}{6} \)",
    "misconception_answer": r"\( \frac{2}{5} \)", "other_wrong_answers": [r"\( \frac{1}{5} \)", r"\( \frac{2}{6} \)"],
}


def parse(text):
    return QuestionGenerator().parse(TARGET, text)


def test_good_output_and_output_wrapped_in_chatter():
    item = parse(json.dumps(GOOD))
    assert item.misconception_answer == r"\( \frac{2}{5} \)"
    wrapped = "Here is the question:\n```json\n" + json.dumps(GOOD) + "\n```\nHope it helps!"
    assert parse(wrapped) == item
    assert parse(json.dumps({**GOOD, "extra": 1})) == item  # unknown keys are dropped


@pytest.mark.parametrize("text, reason", [
    ("I cannot do that.", "no JSON object"),
    ('{"subject": "x", "question": ', "invalid JSON"),
    ("[1, 2]", "no JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "correct_answer"}), "invalid field: correct_answer"),
    (json.dumps({**GOOD, "other_wrong_answers": ["1"]}), "other_wrong_answers has 1 answers, expected 2"),
    (json.dumps({**GOOD, "question": "x" * 5000}), "question is longer than"),
    (json.dumps({**GOOD, "misconception_answer": "   "}), "misconception_answer is empty"),
    (json.dumps({**GOOD, "subject": 12}), "invalid field: subject"),
])
def test_malformed_outputs_raise_parse_error_with_reason(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse(text)


def test_unescaped_latex_in_json_strings_is_kept_as_latex():
    raw = r'{"reason": "The answer \frac{1}{2} \times 3 is right,\nnot \neq 2", "escaped": "\\frac{1}{3}"}'
    value = parse_json_object(raw)
    assert value["reason"] == "The answer \\frac{1}{2} \\times 3 is right,\nnot \\neq 2"
    assert value["escaped"] == "\\frac{1}{3}"


def test_judge_parse():
    item = Item(TARGET, {})
    judge = RubricJudge()
    verdict = judge.parse(item, '{"score": 9, "reason": "Adds the denominators."}')
    assert verdict.score == 9
    with pytest.raises(ParseError, match="score 11 is outside 0-10"):
        judge.parse(item, '{"score": 11, "reason": "great"}')
    with pytest.raises(ParseError, match="invalid field: reason"):
        judge.parse(item, '{"score": 3}')


def test_rationale_parse():
    item = Item(TARGET, {})
    teacher = RationaleWriter()
    text = teacher.parse(item, json.dumps(
        {"rationale": "Rationale: The pupil adds 1 + 1 = 2 and 2 + 3 = 5, giving 2/5."}))
    assert text.startswith("The pupil adds")
    with pytest.raises(ParseError, match="too short"):
        teacher.parse(item, '{"rationale": "2/5"}')
    with pytest.raises(ParseError, match="not prose"):
        teacher.parse(item, '{"rationale": "1. **Identify** the numerators and the denominators"}')
    with pytest.raises(ParseError, match="rationale missing"):
        teacher.parse(item, '{"explanation": "The pupil adds the tops and the bottoms."}')


@pytest.mark.parametrize("raw, value", [
    (r'{"a": "\boxed{16}"}', "\\boxed{16}"),                      # \b: a backspace nobody means
    (r'{"a": "x \rightarrow y"}', "x \\rightarrow y"),            # \r before a word
    (r'{"a": "\frac{1}{\bigstar}"}', "\\frac{1}{\\bigstar}"),
    (r'{"a": "\hat{x} + \sqrt{2}"}', "\\hat{x} + \\sqrt{2}"),     # not JSON escapes at all
    (r'{"a": "\underline{3}"}', "\\underline{3}"),
    (r'{"a": "caf\u00e9"}', "café"),                              # a real unicode escape
    (r'{"a": "one\nThe next\tend"}', "one\nThe next\tend"),       # a new line and a tab stay
    (r'{"a": "2 \times 3 \neq 5 \theta"}', "2 \\times 3 \\neq 5 \\theta"),
])
def test_latex_backslashes_are_not_read_as_json_escapes(raw, value):
    assert parse_json_object(raw)["a"] == value


def test_latex_delimiters_and_spacing_in_json_strings():
    raw = r'{"a": "\( 2\,\frac{1}{3} \) and \{x\} 50\%", "b": "say \"hi\" \/ \\ok"}'
    value = parse_json_object(raw)
    assert value["a"] == "\\( 2\\,\\frac{1}{3} \\) and \\{x\\} 50\\%"
    assert value["b"] == 'say "hi" / \\ok'
