"""Merge the LoRA adapters of several reranker runs on one base into one adapter (e.g. the folds' rerankers).

The merged adapter's weight update is the weighted mean of the parents' updates, exactly: a LoRA
update is ``scale * B @ A``; stacking the parents' ``A`` along the rank and their ``w_i * scale_i * B_i``
beside each other gives ``sum_i w_i * scale_i * B_i @ A_i`` with rank ``sum_i r_i`` and scale 1.
(Averaging the ``A`` and ``B`` matrices separately would not: the mean of products is not the product
of means.)  One adapter is then loaded and run like any other: one forward pass instead of one per
fold model, which is why 1st place merged theirs to fit the time limit.

The parents must share the base (name and sha256), the scoring (pointwise or listwise), the target
modules and layers; each one's training card must be present.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainers import TrainError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "added_tokens.json", "chat_template.jinja")


@dataclass
class Parent:
    path: Path
    card: dict
    config: dict
    weights: dict  # tensor name -> tensor


def read_parent(folder: Path) -> Parent:
    from safetensors.torch import load_file

    from rankers.card import has_card, read_card

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file() or not (folder / ADAPTER_WEIGHTS).is_file():
        raise TrainError(f"{folder}: not a LoRA adapter folder (no {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    if not has_card(folder):
        raise TrainError(f"{folder}: an adapter without its training card; cannot tell its base model")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
        weights = load_file(str(folder / ADAPTER_WEIGHTS))
    except (OSError, ValueError) as e:
        raise TrainError(f"{folder}: cannot read the adapter: {e}") from None
    return Parent(folder, read_card(folder), config, weights)


def _same(parents: list[Parent], what: str, value) -> None:
    first = value(parents[0])
    for p in parents[1:]:
        if value(p) != first:
            raise TrainError(f"{p.path}: {what} {value(p)!r} differs from {parents[0].path}'s {first!r}; "
                             "only adapters of the same base and kind can be merged")


def merge_adapters(folders: list[Path], out: Path, weights: list[float] | None = None) -> dict:
    """Write the merged adapter (weights, config, tokenizer, card) to ``out``; returns its card."""
    import torch
    from safetensors.torch import save_file

    from trainers.card import write_card

    if len(folders) < 2:
        raise TrainError("merge needs at least two adapters")
    parents = [read_parent(Path(f)) for f in folders]
    weights = list(weights) if weights else [1.0 / len(parents)] * len(parents)
    if len(weights) != len(parents) or any(w <= 0 for w in weights):
        raise TrainError(f"--weights: {len(parents)} positive numbers expected, got {weights}")
    total = sum(weights)
    weights = [w / total for w in weights]
    _same(parents, "base", lambda p: (p.card["base"].get("name"), p.card["base"].get("sha256")))
    _same(parents, "scoring", lambda p: p.card.get("scoring", "pointwise"))
    for key in ("target_modules", "layers_to_transform", "task_type"):
        _same(parents, key, lambda p, k=key: sorted(p.config[k]) if isinstance(p.config.get(k), list) else p.config.get(k))
    _same(parents, "LoRA tensors", lambda p: sorted(p.weights))

    merged = {}
    for name in parents[0].weights:
        if ".lora_B." in name:
            continue
        if ".lora_A." not in name:
            raise TrainError(f"{parents[0].path}: tensor {name} is neither LoRA A nor B; cannot merge it")
        b_name = name.replace(".lora_A.", ".lora_B.")
        merged[name] = torch.cat([p.weights[name] for p in parents], dim=0)  # (sum r) x in
        merged[b_name] = torch.cat([w * (p.config["lora_alpha"] / p.config["r"]) * p.weights[b_name]
                                    for w, p in zip(weights, parents)], dim=1)  # out x (sum r)
    rank = sum(p.config["r"] for p in parents)
    config = {**parents[0].config, "r": rank, "lora_alpha": rank}  # scale alpha / r = 1: folded into B
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise TrainError(f"{parents[0].path}: adapters with a {key} cannot be merged")
    out = Path(out)
    if out.exists():
        raise TrainError(f"{out} already exists; choose a new --out")
    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in merged.items()}, str(out / ADAPTER_WEIGHTS))
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:
        if (parents[0].path / name).is_file():
            shutil.copy2(parents[0].path / name, out / name)
    from store import now_iso

    first = parents[0].card
    card = {"kind": "reranker", "scoring": first.get("scoring", "pointwise"), "base": first["base"],
            "finished": now_iso(),
            "hyperparameters": {"merged from": [str(p.path) for p in parents], "weights": [round(w, 4) for w in weights],
                                "lora_r": rank},
            "precision": first.get("precision"), "prompt_version": first.get("prompt_version"),
            "merged_from": [{"path": str(p.path), "weight": round(w, 6), "finished": p.card.get("finished"),
                             "lora_r": p.config["r"]} for p, w in zip(parents, weights)],
            "method": "exact weighted mean of the LoRA updates (A stacked, w * scale * B side by side)",
            "lora_r": rank}
    write_card(out, card, "LLM reranker (LoRA adapter merged from several runs) for Eedi misconceptions")
    return card
