from generators.question import GeneratedQuestion
from judges import NearDuplicateIndex, check_options

BASE = dict(subject="Fractions", construct="Add fractions", question="What is 1/2 + 1/3?",
            correct_answer="5/6", misconception_answer="2/5", other_wrong_answers=["1/5", "2/6"])


def test_option_rules():
    assert check_options(GeneratedQuestion(**BASE)) is None
    same = GeneratedQuestion(**{**BASE, "misconception_answer": r"\( 5/6 \)"})
    assert check_options(same) == "targeted wrong answer equals the correct answer"
    dup = GeneratedQuestion(**{**BASE, "other_wrong_answers": ["2/5", "1/5"]})
    assert check_options(dup) == "options not distinct"


def test_near_duplicates_of_real_and_earlier_questions_are_rejected(embedder, data_dir):
    from eedi import load_eedi

    pairs = load_eedi(data_dir).train_pairs[:200]
    real = {p.QuestionId: p.QuestionText for p in pairs}
    index = NearDuplicateIndex(embedder)
    index.add_texts(list(real), list(real.values()))
    copy = pairs[0].QuestionText
    reason = index.check(index.embed(copy + " "))
    assert reason and reason.startswith("near-duplicate: cosine 1.000 to ")
    fresh = "A bag holds 3 red and 5 blue counters. What fraction of the counters are blue?"
    vector = index.embed(fresh)
    assert index.check(vector) is None
    index.add(["syn-1"], vector[None, :])
    assert index.check(index.embed(fresh)).endswith("to syn-1")
