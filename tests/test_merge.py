"""python -m pipelines.merge on real peft adapters of a tiny Qwen2: the merged update is the parents' mean."""
from __future__ import annotations

import math
import shutil

import pytest

from tests.conftest import run_cli
from tests.train_data import make_tiny_qwen


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    return make_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


def make_adapter(base, folder, seed: int, scoring: str = "listwise", r: int = 4):
    """A LoRA adapter with random A and B (an untrained one has B = 0) and the card pipelines.train writes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rankers.reranker import resolve_base
    from trainers.card import write_card

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)),
                           LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                      init_lora_weights=False))
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(folder))
    write_card(folder, {"kind": "reranker", "scoring": scoring, "base": resolve_base(str(base)).record(),
                        "finished": f"2026-12-01T00:00:0{seed}Z"}, "test adapter")
    return folder


def update(folder, module: str):
    """scale * B @ A of one LoRA module, from the saved files."""
    import json

    from safetensors.torch import load_file

    config = json.loads((folder / "adapter_config.json").read_text())
    w = load_file(str(folder / "adapter_model.safetensors"))
    a = next(v for k, v in w.items() if module in k and ".lora_A." in k)
    b = next(v for k, v in w.items() if module in k and ".lora_B." in k)
    return config["lora_alpha"] / config["r"] * b @ a


@pytest.mark.training
def test_merged_adapter_is_the_mean_update_and_loads_and_scores(tmp_path, tiny_qwen):
    from inference import Reranker

    a = make_adapter(tiny_qwen, tmp_path / "a", 1)
    b = make_adapter(tiny_qwen, tmp_path / "b", 2, r=2)
    out = tmp_path / "merged"
    cp = run_cli("pipelines.merge", "--out", str(out), str(a), str(b))
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert "merged 2 listwise adapters" in cp.stdout and "LoRA rank 6" in cp.stdout
    module = "layers.1.self_attn.v_proj"
    expected = (update(a, module) + update(b, module)) / 2
    assert (update(out, module) - expected).abs().max().item() < 1e-6

    reranker = Reranker(out, kind=None)  # the card says listwise; its base is the tiny model
    assert reranker.kind == "listwise" and reranker.trained
    row = {"QuestionText": "1/2 + 1/3", "CorrectAnswerText": "5/6", "IncorrectAnswerText": "2/5",
           "SubjectName": "Fractions", "ConstructName": "Add fractions"}
    scores = reranker.score(row, ["adds numerators and denominators", "multiplies", "subtracts"])
    assert len(scores) == 3 and all(math.isfinite(s) and s <= 0 for s in scores)


@pytest.mark.training
def test_adapters_of_another_base_or_kind_are_one_line_errors(tmp_path, tiny_qwen):
    other = tmp_path / "other-base"
    shutil.copytree(tiny_qwen, other)  # the same weights under another name: another base to the card
    a = make_adapter(tiny_qwen, tmp_path / "a", 1)
    c = make_adapter(other, tmp_path / "c", 3)
    p = make_adapter(tiny_qwen, tmp_path / "p", 4, scoring="pointwise")
    for parents, message in [((a, c), "base"), ((a, p), "scoring")]:
        cp = run_cli("pipelines.merge", "--out", str(tmp_path / f"m-{message}"), *map(str, parents))
        assert cp.returncode == 2 and "Traceback" not in cp.stderr, cp.stderr[-2000:]
        assert message in cp.stderr and "differs" in cp.stderr.strip().splitlines()[-1]
        assert not (tmp_path / f"m-{message}").exists()
