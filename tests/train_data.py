"""Small real inputs for the trainer and publish tests: a cut-down Eedi folder and a dataset store.

The Eedi folder keeps the competition's file format with fewer questions and
misconceptions; the store is written through the store API with every stage's columns (as
the factory writes it), with rows made from real pairs so the texts are realistic.
"""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from eedi import load_eedi
from store import DatasetStore


def small_eedi(source: Path, target: Path, questions: int = 80, extra_misconceptions: int = 120) -> Path:
    """The first ``questions`` labelled questions of train.csv and the misconceptions they use, plus others."""
    target.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(source / "train.csv", dtype=str, keep_default_na=False).head(questions)
    mapping = pd.read_csv(source / "misconception_mapping.csv", dtype=str, keep_default_na=False)
    used = {float(v) for c in "ABCD" for v in train[f"Misconception{c}Id"] if v.strip()}
    ids = mapping["MisconceptionId"].astype(float)
    others = sorted(set(ids) - used)
    keep = used | set(random.Random(0).sample(others, extra_misconceptions))
    mapping[ids.isin(keep)].to_csv(target / "misconception_mapping.csv", index=False)
    train.to_csv(target / "train.csv", index=False)
    return target


def make_tiny_qwen(folder: Path) -> Path:
    """A 2-layer Qwen2 (random weights, hidden size 32) with the real Qwen2.5 tokenizer, as a transformers folder.

    The tokenizer comes from the embedded GGUF (parsed once, then cached); the reranker
    and LLM-retriever code paths run on it exactly as on the 0.5B model, in seconds.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rankers.reranker import load_tokenizer, resolve_base

    tokenizer = load_tokenizer(resolve_base("qwen2.5-coder-0.5b"))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def store_row(version: str, i: int, pair, misconceptions: dict[int, str], score: float = 9.0) -> dict:
    return {
        "QuestionId": f"syn-{version}-{pair.MisconceptionId}-{i}", "ItemKey": f"{pair.MisconceptionId}:{i}:0:test:{version}",  # each version: new items
        "SubjectName": pair.SubjectName, "ConstructName": pair.ConstructName, "QuestionText": pair.QuestionText,
        "CorrectAnswerText": pair.CorrectAnswerText, "IncorrectAnswerText": pair.IncorrectAnswerText,
        "OtherAnswerTexts": list(pair.OtherAnswerTexts), "MisconceptionId": pair.MisconceptionId,
        "MisconceptionName": misconceptions[pair.MisconceptionId], "ClusterId": 0, "JudgeScore": score,
        "JudgeReason": "fine", "Rationale": f"The pupil {misconceptions[pair.MisconceptionId].lower()}.",
        "Version": version, "ShotIds": [], "RejectStage": "", "RejectReason": "", "RawOutput": "",
        "Seed": 0, "ItemIndex": i, "Attempts": 1, "CreatedAt": "2026-01-01T00:00:00Z",
    }


def add_version(store_root: Path, data_dir: Path, start: int, count: int, rejected: int = 1,
                status: str = "complete") -> str:
    """Add a version with ``count`` kept rows (made from real pairs ``start``..) and ``rejected`` rejects."""
    from factory.stages import all_stage_columns

    data = load_eedi(data_dir)
    store = DatasetStore.open(store_root, all_stage_columns())
    try:
        writer = store.new_version({"config": {"test": True}}, flush_every=max(2, count // 2))
        pairs = data.train_pairs[start:start + count + rejected]
        for i, pair in enumerate(pairs[:count]):
            writer.append("train", store_row(writer.version, i, pair, data.misconceptions))
        for i, pair in enumerate(pairs[count:], start=count):
            writer.append("rejected", store_row(writer.version, i, pair, data.misconceptions, score=2.0)
                          | {"RejectStage": "judge", "RejectReason": "score below 7: 2"})
        writer.finish(status)
        return writer.version
    finally:
        store.close()
