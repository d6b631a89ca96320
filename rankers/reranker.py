"""The reranker: an LLM that scores one candidate misconception at a time, loaded and used.

Input: a chat prompt (``prompts/rerank.*.j2``) with the question, the correct and the
wrong answer, optionally the rationale, and one candidate misconception, ending at the
assistant's first token.  Score = logit("Yes") - logit("No") at that position.

Bases (``resolve_base``): a preset name (default: the embedded Qwen2.5-Coder-0.5B-Instruct GGUF,
loaded with transformers through ``gguf_file=``, which dequantizes it to float32, about 2.5 GB),
a path to a ``.gguf`` file, or a transformers folder.  ``load_model``: float32 on CPU; on CUDA
4-bit (QLoRA, a transformers folder with bitsandbytes) or bfloat16.  ``load_reranker``: a trained
adapter folder, on the base its training card names.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rankers import ModelError
from rankers.retriever import device
from rankers.texts import clip, field

DEFAULT_BASE = "qwen2.5-coder-0.5b"
YES, NO = "Yes", "No"
QUESTION_CHARS = 400


@dataclass(frozen=True)
class Base:
    """Where the base LLM comes from."""

    kind: str  # "gguf" or "transformers"
    spec: str  # what the user gave: preset name or path
    name: str
    path: Path  # the .gguf file or the folder
    sha256: str | None  # of the .gguf file

    def record(self) -> dict:
        return {"kind": self.kind, "spec": self.spec, "name": self.name, "path": str(self.path),
                "sha256": self.sha256}


def resolve_base(spec: str) -> Base:
    from llm.base import BackendError
    from llm.models import PRESETS, resolve_model

    path = Path(spec).expanduser()
    if spec not in PRESETS and path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a transformers model folder (no config.json)")
        return Base("transformers", spec, path.name, path, None)
    try:
        model = resolve_model(spec)
    except BackendError as e:
        raise ModelError(str(e)) from None
    return Base("gguf", spec, model.name, model.path, model.sha256)


def load_tokenizer(base: Base):
    """The base's tokenizer; a GGUF's is parsed once (about 25 s) and cached as a folder."""
    from transformers import AutoTokenizer

    from llm.models import cache_dir
    from store.files import folder_atomic

    if base.kind == "transformers":
        tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    else:
        cached = cache_dir() / "tokenizers" / f"{base.name}-{base.sha256[:12]}"
        if (cached / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(str(cached))
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(base.path.parent), gguf_file=base.path.name)
            with folder_atomic(cached) as tmp:  # another process may cache it first: theirs is kept
                tokenizer.save_pretrained(str(tmp))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def answer_ids(tokenizer) -> tuple[int, int]:
    ids = []
    for word in (YES, NO):
        tokens = tokenizer.encode(word, add_special_tokens=False)
        if len(tokens) != 1:
            raise ModelError(f"reranker base: {word!r} is not a single token for its tokenizer")
        ids.append(tokens[0])
    return ids[0], ids[1]


def load_model(base: Base, quantize_4bit: bool, log: Callable[[str], None] = print):
    """(model, precision note). CPU: float32. CUDA: 4-bit (transformers folder + bitsandbytes) or bfloat16."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    where = {"gguf_file": base.path.name} if base.kind == "gguf" else {}
    folder = str(base.path.parent if base.kind == "gguf" else base.path)
    if device() == "cuda":
        if quantize_4bit and base.kind == "transformers":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                log("reranker: bitsandbytes is not installed (extra [gpu]): LoRA in bfloat16 instead of QLoRA")
            else:
                from peft import prepare_model_for_kbit_training
                from transformers import BitsAndBytesConfig

                quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                           bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
                model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map={"": 0})
                return prepare_model_for_kbit_training(model), "4-bit nf4 (QLoRA)"
        elif quantize_4bit:
            log("reranker: a GGUF base is dequantized by transformers; training LoRA in bfloat16 (no 4-bit)")
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, **where).to("cuda")
        return model, "bfloat16"
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **where), "float32"


class PromptBuilder:
    """Token ids of the prompt for (row, candidate), capped at ``max_tokens`` by shortening the question."""

    def __init__(self, tokenizer, max_tokens: int, with_rationale: bool):
        import prompts

        self.tokenizer, self.max_tokens, self.with_rationale = tokenizer, max_tokens, with_rationale
        self.templates = prompts.load("rerank")

    def _ids(self, row, candidate: str, question: str) -> list[int]:
        system, user = self.templates.render(
            subject=field(row, "SubjectName"), construct=field(row, "ConstructName"), question=question,
            correct_answer=field(row, "CorrectAnswerText"), wrong_answer=field(row, "IncorrectAnswerText"),
            rationale=clip(field(row, "Rationale"), 400) if self.with_rationale else "", misconception=candidate)
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                tokenize=False, add_generation_prompt=True)
        else:
            text = f"{system}\n\n{user}\nAnswer:"
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def __call__(self, row, candidate: str) -> list[int]:
        question = clip(field(row, "QuestionText"), QUESTION_CHARS)
        ids = self._ids(row, candidate, question)
        excess = len(ids) - self.max_tokens
        if excess > 0:
            q_ids = self.tokenizer.encode(question, add_special_tokens=False)
            keep = max(8, len(q_ids) - excess - 2)
            question = self.tokenizer.decode(q_ids[:keep]).rstrip() + "…"
            ids = self._ids(row, candidate, question)
        return ids


def left_padded(inputs: list[list[int]], pad_id: int, start: int = 0):
    """A left-padded batch of prompts: token ids, attention mask, and position ids counted from ``start``."""
    import torch

    width = max(len(x) for x in inputs)
    ids = torch.full((len(inputs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(inputs), width), dtype=torch.long)
    positions = torch.full((len(inputs), width), start, dtype=torch.long)
    for i, x in enumerate(inputs):
        ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
        mask[i, width - len(x):] = 1
        positions[i, width - len(x):] = torch.arange(start, start + len(x))
    return ids, mask, positions


def last_logits(model, inputs: list[list[int]], pad_id: int):
    """The logits at the last position of each prompt (a left-padded batch), float32, one row per prompt."""
    ids, mask, positions = left_padded(inputs, pad_id)
    dev = next(model.parameters()).device
    out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                logits_to_keep=1)
    return out.logits[:, -1, :].float()


MIN_SHARED = 32  # tokens: below this, running the prefix apart costs more than it saves


def shared_prefix_logits(model, inputs: list[list[int]], pad_id: int):
    """``last_logits`` of prompts that begin alike (a listwise window and its reverse share the instructions
    and the question): the shared tokens run once, their keys and values reused by every prompt's rest."""
    import torch

    n = common_prefix(inputs)
    if len(inputs) < 2 or n < MIN_SHARED:
        return last_logits(model, inputs, pad_id)
    from transformers.modeling_outputs import CausalLMOutputWithPast

    # transformers 5.2x renamed past_key_values to cache (the old name warns, then goes)
    name = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
    dev = next(model.parameters()).device
    cache = getattr(model(input_ids=torch.tensor([inputs[0][:n]], device=dev), use_cache=True, logits_to_keep=1),
                    name)
    cache.batch_repeat_interleave(len(inputs))
    ids, rest_mask, positions = left_padded([x[n:] for x in inputs], pad_id, start=n)
    mask = torch.cat([torch.ones((len(inputs), n), dtype=torch.long), rest_mask], dim=1)  # the prefix, then the rests
    out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                logits_to_keep=1, **{name: cache})
    return out.logits[:, -1, :].float()


def common_prefix(inputs: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own."""
    n = min(len(x) for x in inputs) - 1
    first = inputs[0]
    for x in inputs[1:]:
        n = next((i for i in range(n) if x[i] != first[i]), n)
    return max(0, n)


def score(model, inputs: list[list[int]], pad_id: int, yes: int, no: int):
    """logit(Yes) - logit(No) at the last position of each prompt (left-padded batch)."""
    last = last_logits(model, inputs, pad_id)
    return last[:, yes] - last[:, no]


def load_reranker(folder: Path):
    """(model, tokenizer) of a saved reranker: its base (from the training card) with the adapter on top."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from rankers.card import read_card

    card = read_card(folder)
    spec = card["base"]["spec"]
    base = resolve_base(spec)
    if card["base"].get("sha256") and base.sha256 != card["base"]["sha256"]:
        raise ModelError(f"{folder}: trained on {card['base']['name']} sha256 {card['base']['sha256'][:12]}, "
                         f"but {spec} is now {str(base.sha256)[:12]}")
    model, _ = load_model(base, quantize_4bit=False)
    return PeftModel.from_pretrained(model, str(folder)), AutoTokenizer.from_pretrained(str(folder))
