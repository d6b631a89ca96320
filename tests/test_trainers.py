"""Trainers: texts, splits, metrics, the mixing rule, store versions, and short real training runs.

Training runs use the real embedded MiniLM on a subset of rows and names, and a tiny
Qwen2 model built from a transformers config with the real Qwen tokenizer (from the
embedded GGUF) for the reranker: the 0.5B model is too slow to train in a test.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest

from eedi import load_eedi
from eedi.metrics import average_precision_at_k, map_at_k, recall_at_k
from eedi.splits import group_folds, grouped_holdout, holdout_misconceptions
from rankers.texts import doc_text, query_text
from tests.train_data import add_version, make_tiny_qwen
from trainers import TrainError
from trainers.data import (
    AUTO_MAX_REPEAT,
    Example,
    MixRule,
    mix,
    read_synthetic,
    real_examples,
    synthetic_examples,
)


@pytest.fixture(scope="session")
def eedi(data_dir):
    return load_eedi(data_dir)


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> Path:
    return make_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


# ---------- texts, metrics, splits ----------

def test_query_text_is_the_same_for_real_pairs_and_store_rows(eedi):
    pair = eedi.train_pairs[0]
    row = {name: getattr(pair, name) for name in ("SubjectName", "ConstructName", "QuestionText",
                                                  "CorrectAnswerText", "IncorrectAnswerText")}
    assert query_text(pair) == query_text(row)
    text = query_text(pair)
    assert text.index("Wrong answer: " + pair.IncorrectAnswerText) < text.index("Question: ")
    assert pair.SubjectName in text and pair.ConstructName in text and pair.CorrectAnswerText in text
    assert query_text(pair, with_rationale=True) == text  # real rows have no rationale
    row["Rationale"] = "Adds the tops and the bottoms."
    assert "Pupil's reasoning: Adds the tops and the bottoms." in query_text(row, with_rationale=True)
    assert "reasoning" not in query_text(row)
    long = dict(row, QuestionText="x" * 2000)
    assert len(query_text(long)) < 1000 and query_text(long).endswith("…")
    assert doc_text("  Believes a half is 0.2 ") == "Believes a half is 0.2"


def test_metrics_one_true_misconception_per_query():
    assert average_precision_at_k([5, 7, 9], 7) == 0.5
    assert average_precision_at_k([5, 7, 9], 3) == 0.0
    assert average_precision_at_k(list(range(30)), 26, k=25) == 0.0
    ranked = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert map_at_k(ranked, [1, 6, 0]) == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert recall_at_k(ranked, [1, 6, 0]) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, [1, 6, 0], k=2) == pytest.approx(1 / 3)


def test_grouped_holdout_is_deterministic_and_keeps_misconceptions_unseen(eedi):
    pairs = eedi.train_pairs
    train, val, held = grouped_holdout(pairs, 0.15, seed=0)
    with_rows = {p.MisconceptionId for p in pairs}
    assert len(held) == round(0.15 * len(with_rows))
    assert {p.MisconceptionId for p in val} == held
    assert not held & {p.MisconceptionId for p in train}
    assert len(train) + len(val) == len(pairs)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    assert holdout_misconceptions(shuffled, 0.15, seed=0) == held  # independent of row order
    assert holdout_misconceptions(pairs, 0.15, seed=1) != held
    assert holdout_misconceptions(pairs, 0.0) == set()


@pytest.mark.parametrize("by", ["MisconceptionId", "ConstructId"])
def test_group_folds_keep_groups_whole_and_balance_rows(eedi, by):
    pairs = eedi.train_pairs
    folds = group_folds(pairs, 5, by=by, seed=0)
    fold_of_group: dict = {}
    for pair, fold in zip(pairs, folds):
        assert fold_of_group.setdefault(getattr(pair, by), fold) == fold
    sizes = [folds.count(f) for f in range(5)]
    assert max(sizes) - min(sizes) <= max(sizes) * 0.05
    assert group_folds(pairs, 5, by=by, seed=0) == folds
    with pytest.raises(ValueError, match="by must be one of"):
        group_folds(pairs, 5, by="SubjectName")


# ---------- mixing and store versions ----------

def _synth(mid: int, key: str, score: float) -> Example:
    return Example(key, "v1", mid, {"QuestionId": key, "JudgeScore": score})


def test_mix_caps_per_misconception_then_ratio_round_robin():
    real = [Example(f"r{i}", "real", 1000 + i, None) for i in range(4)]
    synthetic = [_synth(1, "a", 5.0), _synth(1, "b", 9.0), _synth(1, "c", 8.0),
                 _synth(2, "d", 7.0), _synth(2, "e", 7.0), _synth(3, "f", 10.0), _synth(4, "g", 10.0)]
    examples, stats = mix(real, synthetic, MixRule(per_misconception=2, ratio=math.inf), held_out={4})
    used = {e.key for e in examples[len(real):]}
    assert used == {"b", "c", "d", "e", "f"}  # misconception 1: best two scores; 4 is held out
    assert stats["synthetic_dropped_held_out"] == 1 and stats["synthetic_used"] == 5
    examples, stats = mix(real, synthetic, MixRule(per_misconception=2, ratio=0.75), held_out={4})
    used = [e for e in examples[len(real):]]
    assert len(used) == 3 and {e.misconception_id for e in used} == {1, 2, 3}  # coverage before depth
    assert examples[:len(real)] == real
    examples, stats = mix(real, synthetic, MixRule(per_misconception=2, ratio=0.75, repeat=3), held_out={4})
    assert examples[len(real):] == used * 3 and stats["synthetic_used"] == 3 and stats["total"] == 4 + 9


def test_auto_repeat_keeps_synthetic_uses_within_the_ratio_and_the_ceiling():
    synthetic = [_synth(1, "a", 9.0), _synth(2, "b", 9.0), _synth(3, "c", 9.0)]
    for n_real, ratio, expected in ((40, 1.0, 13), (40, 0.5, 6), (1000, math.inf, AUTO_MAX_REPEAT), (2, 1.0, 1)):
        real = [Example(f"r{i}", "real", 1000 + i, None) for i in range(n_real)]
        examples, stats = mix(real, synthetic, MixRule(per_misconception=1, ratio=ratio))
        used = 3 if math.isinf(ratio) else min(3, int(ratio * n_real))
        assert stats["synthetic_repeat"] == expected and len(examples) == n_real + used * expected
    assert mix([], [], MixRule())[1]["synthetic_repeat"] == 1


def test_versions_latest_all_ids_since_and_running(tmp_path, data_dir):
    store = tmp_path / "store"
    v1 = add_version(store, data_dir, 0, 4)
    time.sleep(1.1)  # version ids carry their start second: keep them in time order
    v2 = add_version(store, data_dir, 10, 3)
    time.sleep(1.1)
    v3 = add_version(store, data_dir, 20, 2, status="running")
    assert read_synthetic(store, "latest").versions == [v2]
    sel = read_synthetic(store, "all")
    assert sel.versions == [v1, v2] and sel.skipped_running == [v3] and len(sel.rows) == 7
    assert all(s.startswith("data/train-") for s in sel.shards)
    assert read_synthetic(store, v1).versions == [v1]
    since = read_synthetic(store, "all", since=v1)
    assert since.versions == [v2] and all(v2 in s for s in since.shards) and len(since.rows) == 3
    with pytest.raises(TrainError, match=f"--versions nope: no such version in {store}"):
        read_synthetic(store, "nope")
    with pytest.raises(TrainError, match="still running"):
        read_synthetic(store, v3)
    with pytest.raises(TrainError, match="--since v0: no such version"):
        read_synthetic(store, "all", since="v0")
    with pytest.raises(TrainError, match="not a dataset store"):
        read_synthetic(tmp_path, "all")


def test_synthetic_rows_are_checked_against_the_mapping(tmp_path, data_dir, eedi):
    store = tmp_path / "store"
    add_version(store, data_dir, 0, 2)
    rows = read_synthetic(store, "all").rows
    assert len(synthetic_examples(rows, eedi.misconceptions)) == 2
    bad = dict(rows[0], MisconceptionId=99999)
    with pytest.raises(TrainError, match=r"data/train-.*:1: MisconceptionId 99999 is not in misconception_mapping"):
        synthetic_examples([bad], eedi.misconceptions)


# ---------- retriever ----------

def _subset(eedi, rows: int, names: int):
    train_pairs, val_pairs, _ = grouped_holdout(eedi.train_pairs[:rows], 0.2, seed=0)
    train, val = real_examples(train_pairs), real_examples(val_pairs)
    used = {e.misconception_id for e in train + val}
    others = random.Random(0).sample(sorted(set(eedi.misconceptions) - used), names - len(used))
    return train, val, {m: eedi.misconceptions[m] for m in sorted(used | set(others))}


def test_batches_never_repeat_a_misconception(eedi):
    from trainers.retriever import make_batches

    train = real_examples(eedi.train_pairs)
    rng = random.Random(0)
    negatives = [rng.sample(sorted(set(range(2587)) - {e.misconception_id}), 2) for e in train]
    batches = make_batches(train, negatives, 32, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(len(train)))
    for batch in batches:
        ids = [m for i in batch for m in (train[i].misconception_id, *negatives[i])]
        assert len(ids) == len(set(ids)) and len(batch) <= 32


@pytest.mark.training
def test_retriever_trains_validates_and_saves_a_loadable_folder(tmp_path, eedi):
    from sentence_transformers import SentenceTransformer

    from rankers.retriever import Index, load_encoder
    from trainers.retriever import RetrieverConfig, mine_hard_negatives, train_retriever

    train, val, names = _subset(eedi, 80, 120)
    logs: list[str] = []
    config = RetrieverConfig(batch_size=8, max_steps=3, hard_negatives=1, epochs=2)
    result = train_retriever(train, val, names, config, tmp_path / "r", progress=False, log=logs.append)
    epochs = [h["epoch"] for h in result.history]  # before training, then where the step budget ended
    assert len(epochs) == 2 and epochs[0] == 0 and 0 < epochs[1] < 1
    assert result.steps == 3 and result.examples <= 24
    for h in result.history:
        assert 0 <= h["map@25"] <= h["recall@25"] <= 1 and h["queries"] == len(val)
    assert any("hard negatives" in line for line in logs)
    # mined negatives are never the true misconception, nor names scoring near it (the margin)
    model, _, _ = load_encoder(None)
    index = Index(model, names)
    queries, truths = [query_text(e.row) for e in train], [e.misconception_id for e in train]
    mined = mine_hard_negatives(index, queries, truths, 3, margin=None)
    assert all(len(m) == 3 and t not in m for t, m in zip(truths, mined))
    assert mined == index.rank(queries, 3, exclude=truths)
    sims = index.encode(queries) @ index.vectors.T
    for row, (t, m) in enumerate(zip(truths, mine_hard_negatives(index, queries, truths, 3, margin=0.95))):
        positive = sims[row, index.row_of[t]]
        assert t not in m and all(sims[row, index.row_of[x]] < 0.95 * positive + 1e-6 for x in m)
    loaded = SentenceTransformer(str(tmp_path / "r"), device="cpu")
    assert loaded.encode(["Believes a half is 0.2"]).shape == (1, 384)


@pytest.mark.training
def test_llm_retriever_with_lora_and_last_token_pooling(tmp_path, eedi, tiny_qwen):
    from sentence_transformers import SentenceTransformer

    from trainers.retriever import RetrieverConfig, train_retriever

    train, val, names = _subset(eedi, 60, 80)
    config = RetrieverConfig(base=str(tiny_qwen), batch_size=4, max_steps=2, hard_negatives=1, lora=True,
                             lora_r=4, max_seq_length=64)
    result = train_retriever(train, val, names, config, tmp_path / "r", progress=False, log=lambda _: None)
    assert result.kind == "llm, last-token pooling"
    assert not (tmp_path / "r" / "adapter_config.json").exists()  # LoRA merged into the weights
    loaded = SentenceTransformer(str(tmp_path / "r"), device="cpu")
    assert loaded[1].get_config_dict()["pooling_mode"] == "lasttoken"
    vectors = loaded.encode(["a", "b c d"], normalize_embeddings=False)
    assert vectors.shape == (2, 32) and abs(float((vectors[0] ** 2).sum()) - 1) < 1e-4  # Normalize module
    with pytest.raises(TrainError, match="--lora is for decoder-LLM folders"):
        train_retriever(train, val, names, RetrieverConfig(lora=True, max_steps=1), tmp_path / "x",
                        progress=False, log=lambda _: None)


# ---------- reranker ----------

@pytest.mark.training
def test_reranker_prompt_score_train_save_and_resume(tmp_path, eedi, tiny_qwen):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rankers.reranker import PromptBuilder, answer_ids, load_tokenizer, resolve_base, score
    from trainers.reranker import RerankerConfig, train_reranker

    train, val, names = _subset(eedi, 60, 80)
    tokenizer = load_tokenizer(resolve_base(str(tiny_qwen)))
    build = PromptBuilder(tokenizer, max_tokens=120, with_rationale=True)
    row = {"SubjectName": "Fractions", "ConstructName": "Add fractions", "QuestionText": "What is 1/2 + 1/3? " * 40,
           "CorrectAnswerText": "5/6", "IncorrectAnswerText": "2/5", "Rationale": "Adds tops and bottoms."}
    ids = build(row, "Adds the numerators and the denominators")
    text = tokenizer.decode(ids)
    assert len(ids) <= 120 and text.endswith("<|im_start|>assistant\n")
    assert "Wrong answer: 2/5" in text and "Misconception: Adds the numerators" in text and "Adds tops" in text
    yes, no = answer_ids(tokenizer)
    assert tokenizer.decode([yes]) == "Yes" and tokenizer.decode([no]) == "No"

    ranked_calls = []

    def rank(rows, k, exclude):  # a stand-in retriever over the subset: deterministic, never the truth
        ranked_calls.append(len(rows))
        pool = sorted(names)
        return [[m for m in pool if m != (exclude[i] if exclude else None)][:k] for i in range(len(rows))]

    config = RerankerConfig(base=str(tiny_qwen), steps=3, negatives=2, max_tokens=96, eval_queries=2, eval_top=3,
                            lora_layers=1)
    result = train_reranker(train, val, names, rank, config, tmp_path / "rr", progress=False, log=lambda _: None)
    assert len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)
    assert result.losses[0] == pytest.approx(math.log(3), abs=0.05)  # 3 near-equal scores at the start
    assert set(result.evaluation) == {"retriever", "reranked", "top"}
    adapter = tmp_path / "rr"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer.json").is_file()

    base = AutoModelForCausalLM.from_pretrained(str(tiny_qwen))
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    lora_layers = {n.split(".layers.")[1].split(".")[0] for n, _ in model.named_parameters() if "lora_" in n}
    assert lora_layers == {"1"}  # only the last layer carries LoRA
    prompts = [build(row, names[m]) for m in list(names)[:3]]
    with torch.no_grad():
        scores = score(model, prompts, tokenizer.pad_token_id, yes, no)
        plain = score(AutoModelForCausalLM.from_pretrained(str(tiny_qwen)).eval(), prompts,
                      tokenizer.pad_token_id, yes, no)
        # left padding and position ids: a prompt scores the same alone as in a batch
        alone = score(model, prompts[:1], tokenizer.pad_token_id, yes, no)
    assert scores.shape == (3,) and not torch.allclose(scores, plain)  # the adapter changed the scores
    assert float(alone[0]) == pytest.approx(float(scores[0]), abs=1e-4)

    again = train_reranker(train, val, names, rank, RerankerConfig(base=str(tiny_qwen), steps=1, eval_queries=0),
                           tmp_path / "rr2", resume_from=adapter, progress=False, log=lambda _: None)
    assert again.trainable_parameters == result.trainable_parameters  # the parent's adapter, still trainable
