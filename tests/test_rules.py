import pytest
from eedi.answers import check_options
from judges import NearDuplicateIndex


def test_option_rules():
    assert check_options("5/6", "2/5", ["1/5", "2/6"]) is None
    assert check_options("5/6", r"\( 5/6 \)", ["1/5", "2/6"]) == "targeted wrong answer equals the correct answer"
    assert check_options("5/6", "2/5", ["2/5", "1/5"]) == "options not distinct"


@pytest.mark.slow
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


def test_round_trip_and_repeat_rejects_count_as_one_reason_each_whatever_their_details(embedder):
    """The run summary and the dataset card count rejects by reason (``reject_category``): a rank or a
    row id belongs in the detail, after the colon, or every reject is a reason of its own."""
    from types import SimpleNamespace

    from factory.context import Context, Item
    from judges.roundtrip import RoundTrip
    from judges.rules import RepeatedDistractors
    from store import reject_category

    names = {1: "Adds the numerators and the denominators", 2: "Thinks a right angle is 180 degrees",
             3: "Confuses the mean and the median", 4: "Multiplies when it should divide"}
    ctx = SimpleNamespace(embedder=embedder, ids=list(names), names=names, kept=None, reject=Context.reject,
                          vectors=embedder.encode(list(names.values())))
    rows = [{"MisconceptionId": 2, "QuestionText": f"What is {a} + {b}?", "CorrectAnswerText": str(a + b),
             "IncorrectAnswerText": "5", "ConstructName": "Add whole numbers", "BaseQuestionId": "q7",
             "QuestionId": f"syn-{i}"} for i, (a, b) in enumerate([(2, 3), (4, 1), (1, 4)])]
    items = [Item(target=None, row=r) for r in rows]
    trip = RoundTrip(top_k=1)
    trip.setup(ctx)
    trip.run(items, ctx)
    ranks = {it.row["RoundTripRank"] for it in items}
    assert all(it.reject and it.reject.stage == "round-trip" for it in items) and ranks <= {2, 3, 4}
    assert {reject_category(it.reject.stage, it.reject.reason) for it in items} == {
        "round-trip: target ranks below 1 for the retriever"}

    items = [Item(target=None, row=dict(r)) for r in rows]
    repeat = RepeatedDistractors()
    repeat.setup(ctx)
    repeat.run(items, ctx)
    assert items[0].reject is None and items[0].row["Checks"] == ["repeat"]
    assert [it.reject.reason for it in items[1:]] == [
        "same wrong answer to the same question as a kept row: question q7, syn-0"] * 2
    assert {reject_category(it.reject.stage, it.reject.reason) for it in items[1:]} == {
        "repeat: same wrong answer to the same question as a kept row"}
