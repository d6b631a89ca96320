from eedi.answers import check_options
from judges import NearDuplicateIndex


def test_option_rules():
    assert check_options("5/6", "2/5", ["1/5", "2/6"]) is None
    assert check_options("5/6", r"\( 5/6 \)", ["1/5", "2/6"]) == "targeted wrong answer equals the correct answer"
    assert check_options("5/6", "2/5", ["2/5", "1/5"]) == "options not distinct"


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
