"""Ranking, the unseen boost, the misconception-embedding cache, fold specs and the evaluation's leak rule."""
import math
from dataclasses import replace

import numpy as np
import pytest

from eedi import load_eedi
from eedi.splits import FoldSpec
from evaluation.crossval import (
    EvalConfig,
    HiddenRows,
    admissible,
    evaluate_condition,
    make_folds,
    paired_interval,
    rows_digest,
)
from factory import SynthConfig, plan, prepare
from inference.ranking import RETRIEVER_TEMPERATURE, Retriever, boosted, rank_rows
from trainers.data import Example, MixRule
from trainers.retriever import RetrieverConfig


@pytest.fixture(scope="module")
def data(data_dir):
    return load_eedi(data_dir)


@pytest.fixture(scope="module")
def retriever(data, tmp_path_factory):
    return Retriever(None, data.misconceptions, cache=tmp_path_factory.mktemp("cache"))


def test_boost_adds_temperature_times_log_factor_to_unseen_scores():
    ids, scores = [1, 2, 3], [0.50, 0.48, 0.40]
    assert boosted(ids, scores, {2}, 1.0, 0.05) == [1, 2, 3]
    # 0.48 + 0.05 ln 2 = 0.5147 > 0.50
    assert boosted(ids, scores, {2}, 2.0, 0.05) == [2, 1, 3]
    # 0.40 + 0.05 ln 2 < 0.50: order kept below the gap
    assert boosted(ids, scores, {3}, 2.0, 0.05) == [1, 2, 3]
    assert boosted(ids, scores, {3}, math.exp(3), 0.05) == [3, 1, 2]
    # a boost below 1 pushes unseen ones down
    assert boosted(ids, scores, {1}, 0.5, 0.05) == [2, 1, 3]


@pytest.mark.slow
def test_misconception_embeddings_are_cached_per_retriever(data, retriever, tmp_path_factory):
    assert not retriever.cached and retriever.cache_file.is_file()
    again = Retriever(None, data.misconceptions, cache=retriever.cache_file.parents[1])
    assert again.cached
    np.testing.assert_array_equal(again.index.vectors, retriever.index.vectors)
    # other names: another cache entry
    fewer = dict(list(data.misconceptions.items())[:100])
    other = Retriever(None, fewer, cache=retriever.cache_file.parents[1])
    assert not other.cached and other.cache_file != retriever.cache_file


@pytest.mark.slow
def test_ranking_streams_in_batches_and_boost_favours_unseen(data, retriever):
    pairs = data.train_pairs[:40]
    whole = list(rank_rows(pairs, retriever, data.misconceptions, k=25, batch_size=256))
    batched = list(rank_rows(pairs, retriever, data.misconceptions, k=25, batch_size=7))
    assert whole == batched
    assert all(len(ids) == 25 == len(set(ids)) for ids in whole)
    unseen = {m for m, n in data.real_row_counts().items() if n == 0}
    bonus = retriever.bonus(unseen, 2.0)
    assert bonus.max() == pytest.approx(RETRIEVER_TEMPERATURE * math.log(2.0))
    plain = sum(m in unseen for ids in whole for m in ids)
    boosted_lists = list(rank_rows(pairs, retriever, data.misconceptions, k=25, unseen=unseen, boost=4.0))
    assert sum(m in unseen for ids in boosted_lists for m in ids) > plain


def test_fold_spec_round_trips_and_rejects_bad_text(data):
    spec = FoldSpec("MisconceptionId", 5, 3, 2)
    assert str(spec) == "MisconceptionId:k=5:seed=3:fold=2"
    assert FoldSpec.parse(str(spec)) == spec
    for bad in ("MisconceptionId", "Subject:k=5:seed=0:fold=1", "MisconceptionId:k=5:seed=0:fold=7",
                "MisconceptionId:k=x:seed=0:fold=1"):
        with pytest.raises(ValueError):
            FoldSpec.parse(bad)
    rest, held = spec.split(data.train_pairs)
    assert len(rest) + len(held) == len(data.train_pairs)
    assert not {p.MisconceptionId for p in rest} & {p.MisconceptionId for p in held}


def test_leak_rule(data):
    pairs = data.train_pairs
    hidden_of = HiddenRows(pairs)
    spec0 = FoldSpec("MisconceptionId", 5, 0, 0)
    _, val0 = spec0.split(pairs)
    _, val1 = FoldSpec("MisconceptionId", 5, 0, 1).split(pairs)
    keys0 = {p.key for p in val0}
    outside = next(p.key for p in pairs if p.key not in keys0)
    made_for_0 = {"ShotIds": [outside], "RealRowsHidden": str(spec0)}
    assert admissible(made_for_0, keys0, hidden_of)
    # fold 1's validation rows were references when it was made
    assert not admissible(made_for_0, {p.key for p in val1}, hidden_of)
    # a shot among the validation rows
    assert not admissible({**made_for_0, "ShotIds": [next(iter(keys0))]}, keys0, hidden_of)
    # an ordinary run: every real question was a near-duplicate reference
    assert not admissible({"ShotIds": [], "RealRowsHidden": ""}, keys0, hidden_of)
    # hiding a construct fold: admissible for a misconception fold only if it hid all of its rows
    construct0 = FoldSpec("ConstructId", 5, 0, 0)
    assert admissible({"ShotIds": [], "RealRowsHidden": str(construct0)}, keys0, hidden_of) == \
        (keys0 <= hidden_of(str(construct0)))


@pytest.mark.slow
def test_hidden_fold_targets_its_misconceptions_and_never_shows_its_rows(data_dir):
    spec = FoldSpec("MisconceptionId", 5, 0, 1)
    config = SynthConfig(data_dir=data_dir, hide_fold=spec, shots=5)
    world = prepare(config)
    _, held = spec.split(load_eedi(data_dir).train_pairs)
    held_keys = {p.key for p in held}
    assert not held_keys & {p.key for p in world.data.train_pairs}  # shots and near-duplicate references
    targets = plan(world, config, world.chosen_targets(config))
    assert {t.misconception_id for t in targets} == {p.MisconceptionId for p in held}
    assert not held_keys & {s.key for t in targets for s in t.shots}
    assert config.as_record()["hide_fold"] == str(spec)


def test_folds_by_misconception_and_construct_partition_the_rows(data):
    config = EvalConfig(schemes=["MisconceptionId", "ConstructId"], folds=3)
    folds = make_folds(data.train_pairs, config)
    assert len(folds) == 6
    for scheme in ("MisconceptionId", "ConstructId"):
        mine = [f for f in folds if f.scheme == scheme]
        assert sum(len(f.val) for f in mine) == len(data.train_pairs)
        for f in mine:
            key = "MisconceptionId" if scheme == "MisconceptionId" else "ConstructId"
            assert not {getattr(p, key) for p in f.train} & {getattr(p, key) for p in f.val}


def test_folds_outside_the_split_are_refused(data):
    with pytest.raises(ValueError, match="fold -1 is not in 0..2"):
        make_folds(data.train_pairs, EvalConfig(folds=3, only_folds=[-1]))
    with pytest.raises(ValueError, match="k must be at least 2"):
        make_folds(data.train_pairs, EvalConfig(folds=1))


def test_each_condition_is_reused_unless_its_own_settings_change():
    base = EvalConfig(repeats=[None, 4])
    names = [name for name, _, _ in base.synthetic_conditions(["v1"])]
    assert names == ["real+v1", "real+v1x4"]  # None: the training default, auto
    assert [rule.repeat for _, _, rule in base.synthetic_conditions(["v1"])] == [None, 4]
    more = EvalConfig(repeats=[1, 4, 16], only_folds=[0], mix=MixRule(per_misconception=2, ratio=math.inf))
    for condition in ("zero-shot", "real"):  # more repeats, fewer folds, another mix: nothing retrains
        assert base.fingerprint(condition) == more.fingerprint(condition)
    (name, _, rule), = [c for c in more.synthetic_conditions(["v1"]) if c[0] == "real+v1x4"]
    assert more.fingerprint(name, rule) != base.fingerprint(name, base.synthetic_conditions(["v1"])[1][2])
    assert more.fingerprint(name, rule) != more.fingerprint(name, replace(rule, repeat=5))
    # a pooled condition's rows grow as versions are added: the rows are part of both fingerprints
    real = [Example("1_A", "real", 1, None)]
    one, two = real + [Example("s1", "v1", 2, {})], real + [Example("s1", "v1", 2, {}), Example("s2", "v2", 3, {})]
    assert rows_digest(real) == "" and rows_digest(one) != rows_digest(two)
    assert more.fingerprint(name, rule, rows_digest(one)) != more.fingerprint(name, rule, rows_digest(two))
    trained = {more.training_fingerprint(name, rule, rows_digest(rows)) for rows in (one, two)}
    assert len(trained) == 2
    faster = EvalConfig(retriever=RetrieverConfig(max_steps=10))
    assert faster.fingerprint("zero-shot") == base.fingerprint("zero-shot")
    assert faster.fingerprint("real") != base.fingerprint("real")
    assert EvalConfig(boosts=[1.0]).fingerprint("zero-shot") != base.fingerprint("zero-shot")


def test_paired_interval_brackets_the_mean_difference():
    assert paired_interval([0.1] * 20) == (0.1, 0.1)
    lo, hi = paired_interval([0.3, -0.2, 0.1, -0.1, 0.0, 0.2, -0.3, 0.05] * 5)
    assert lo < 0.0075 < hi and lo < 0 < hi
    lo, hi = paired_interval([0.05, 0.1, 0.0, 0.2] * 10)  # every pair improves or ties
    assert 0 < lo < 0.0875 < hi


@pytest.mark.slow
def test_condition_variants_report_seen_and_unseen_pairs(data, retriever):
    folds = make_folds(data.train_pairs, EvalConfig(schemes=["ConstructId"], folds=5, only_folds=[0]))
    fold = folds[0]
    val = fold.val[:60]
    unseen = set(data.misconceptions) - {p.MisconceptionId for p in fold.train}
    config = EvalConfig(boosts=[1.0, 2.0])
    variants = evaluate_condition(retriever, val, set(), unseen, config, scores=None)
    assert set(variants) == {"retriever|1", "retriever|2"}
    m = variants["retriever|1"]["metrics"]
    assert m["all"]["pairs"] == 60 == m["seen"]["pairs"] + m["unseen"]["pairs"]
    assert 0 <= m["all"]["map@25"] <= m["all"]["recall@25"] <= m["all"]["recall@100"] <= 1
    assert len(variants["retriever|1"]["ap"]) == 60


def test_listwise_windows_cover_every_candidate_in_both_orders():
    from rankers.listwise import Windows, combine

    assert Windows(4, reverse=False).plan(8) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert Windows(4, 2).plan(6) == [[0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 4, 5], [5, 4, 3, 2]]
    assert Windows(4, 3, reverse=False).plan(6) == [[0, 1, 2, 3], [2, 3, 4, 5]]  # the last window ends at the last
    assert Windows(8).plan(3) == [[0, 1, 2], [2, 1, 0]]  # fewer candidates than the window
    scores = combine(3, [[0, 1], [1, 2]], [[-1.0, -3.0], [-1.0, -2.0]])
    assert scores == [-1.0, -2.0, -2.0]  # candidate 1: the mean over both prompts it is in
    from rankers import ModelError
    with pytest.raises(ModelError, match="window"):
        Windows(27)


def test_fusing_keeps_the_retriever_order_where_the_reranker_is_unsure():
    from inference.ranking import rerank

    retrieved, first = [7, 3, 5, 9], [0.60, 0.55, 0.50, 0.10]  # cosines, best first
    flat = lambda row, head: {m: math.log(1 / 3) for m in head}  # noqa: E731 - letter probabilities all alike
    sure = lambda row, head: {7: math.log(0.01), 3: math.log(0.01), 5: math.log(0.98)}  # noqa: E731
    assert rerank(None, retrieved, 3, sure, set(), 1.0) == [5, 7, 3, 9]  # the reranker alone
    assert rerank(None, retrieved, 3, flat, set(), 1.0, first, fuse=1.0) == [7, 3, 5, 9]
    # sure enough to overcome a cosine gap of 0.10 (2.0 in log-probability at T = 1/20); ties keep the order
    assert rerank(None, retrieved, 3, sure, set(), 1.0, first, fuse=1.0) == [5, 7, 3, 9]
    assert rerank(None, retrieved, 3, sure, set(), 1.0, first, fuse=10.0) == [7, 3, 5, 9]


def test_memoized_scores_each_candidate_once_and_a_listwise_list_as_a_whole():
    from types import SimpleNamespace

    from inference import Memoized

    class Counting:  # a reranker whose score is the name's length; it records what it was asked
        def __init__(self, kind):
            self.kind, self.asked = kind, []

        def score(self, row, names):
            self.asked.append(list(names))
            return [float(len(n)) for n in names]

    row = SimpleNamespace(key="q1_A")
    pointwise = Counting("pointwise")
    memo = Memoized(pointwise)
    assert memo.score(row, ["ab", "abc"]) == [2.0, 3.0]
    assert memo.score(row, ["abc", "a", "ab"]) == [3.0, 1.0, 2.0]
    assert pointwise.asked == [["ab", "abc"], ["a"]]  # only the new candidate was scored
    listwise = Counting("listwise")
    memo = Memoized(listwise)
    memo.score(row, ["ab", "abc"]), memo.score(row, ["ab", "abc"]), memo.score(row, ["abc", "ab"])
    assert listwise.asked == [["ab", "abc"], ["abc", "ab"]]  # a new list is a new prompt


def test_a_shared_prefix_run_once_gives_the_logits_of_each_whole_prompt(tmp_path):
    """A window and its reverse share their first part; reusing its keys and values changes no logit."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rankers.listwise import ModelScorer, Windows
    from rankers.reranker import MIN_SHARED, common_prefix, last_logits, shared_prefix_logits
    from tests.train_data import make_tiny_qwen

    folder = make_tiny_qwen(tmp_path / "tiny")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(str(folder)).eval(), AutoTokenizer.from_pretrained(str(folder))
    row = {"SubjectName": "Fractions", "ConstructName": "Divide a quantity in a ratio", "QuestionText": "Share 12 by 5",
           "CorrectAnswerText": "12/5", "IncorrectAnswerText": "5/12"}
    names = ["Swaps the dividend and the divisor", "Adds instead of dividing", "Believes 1/x means x", "Rounds early"]
    scorer = ModelScorer(model, tokenizer, Windows(4))
    inputs = [scorer.prompt_ids(row, names), scorer.prompt_ids(row, names[::-1]), scorer.prompt_ids(row, names[:3])]
    assert common_prefix(inputs) >= MIN_SHARED and common_prefix([[1, 2, 3], [1, 2]]) == 1
    with torch.no_grad():
        plain, shared = last_logits(model, inputs, tokenizer.pad_token_id), \
            shared_prefix_logits(model, inputs, tokenizer.pad_token_id)
    assert torch.allclose(plain, shared, atol=1e-4), (plain - shared).abs().max()


def test_a_served_listwise_answer_becomes_scores_of_the_candidates_it_lists():
    """BackendScorer over a backend that answers with top logprobs (as an OpenAI-compatible server does)."""
    from rankers.listwise import FLOOR_LOGPROB, BackendScorer, Windows
    from tests.letter_server import LetterServer

    server = LetterServer((("B", -0.1), ("Z", -0.5), ("A", -2.5)))  # the letters' logprobs favour B
    scorer = BackendScorer(server, Windows(3))
    row = {"QuestionText": "2 + 3 x 4", "CorrectAnswerText": "14", "IncorrectAnswerText": "20",
           "SubjectName": "BIDMAS", "ConstructName": "order of operations"}
    scores = scorer.score(row, ["adds first", "multiplies first", "ignores brackets"])
    for r in server.requests:
        assert [line[:1] for line in r.messages[1][1].splitlines() if line[1:3] == ". "] == ["A", "B", "C"]
    assert len(server.requests) == 2 and all(r.max_tokens == 1 and r.logprobs == 3 for r in server.requests)
    # forward: A=adds, B=multiplies, C=ignores; reversed: A=ignores, B=multiplies, C=adds
    assert scores[1] > scores[0] and scores[1] > scores[2]
    assert math.isclose(scores[0], scores[2]) and scores[0] > FLOOR_LOGPROB  # each once as A, once as C (floor)
