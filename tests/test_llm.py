"""The real embedded LLM (Qwen2.5-Coder-0.5B-Instruct GGUF) on llama.cpp's server, behind the backend interface."""
import dataclasses

import pytest

from generators import QuestionGenerator, Target
from llm import BackendError, ModelIdentity, Usage, resolve_model
from llm.models import PRESETS, sha256_file
from llm.openai_backend import ClientOptions, OpenAIBackend
from llm.step import run_steps

pytestmark = pytest.mark.llm
TARGET = Target(1, "Believes you add the denominators when adding fractions", 0, 0, 5, ())


@pytest.fixture(scope="module")
def backend(llama_server):
    b = OpenAIBackend(llama_server.base_url, llama_server.alias, ModelIdentity("qwen-0.5b", "", "llama.cpp"),
                      options=ClientOptions(structured="llama.cpp"))
    yield b
    b.close()


def test_embedded_model_is_assembled_and_verified():
    model = resolve_model("qwen2.5-coder-0.5b")
    assert model.sha256 == PRESETS["qwen2.5-coder-0.5b"].sha256 == sha256_file(model.path)


def test_bad_model_specs_are_one_line_errors(tmp_path):
    with pytest.raises(BackendError, match="not a preset"):
        resolve_model("gpt-17")
    with pytest.raises(BackendError, match="file not found"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_schema_constrained_generation_parses(backend):
    usage = Usage()
    outcome = run_steps(QuestionGenerator(max_tokens=400), backend, [TARGET], usage, max_attempts=3)[0]
    assert outcome.ok, (outcome.error, outcome.raw)
    assert outcome.value.question and len(outcome.value.other_wrong_answers) == 2
    assert usage.requests == outcome.attempts and usage.completion_tokens > 0
    assert usage.structured == usage.requests and usage.parsed == 0


def test_invalid_output_is_retried_up_to_the_bound_then_rejected(backend):
    class Truncating(QuestionGenerator):
        def prompt(self, target):  # a budget far too small for the JSON: every answer is cut
            return dataclasses.replace(super().prompt(target), max_tokens=8)

    usage = Usage()
    outcome = run_steps(Truncating(), backend, [TARGET], usage, max_attempts=2)[0]
    assert not outcome.ok and outcome.attempts == 2 and usage.requests == 2
    assert outcome.error == "output cut at max_tokens=8"
    assert outcome.raw  # the raw text is kept for the reject row
    assert usage.failures == {"output cut at max_tokens=8": 2}
