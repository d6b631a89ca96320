import hashlib
import shutil

import pytest

import prompts
from generators import QuestionGenerator, Shot, Target
from prompts import TemplateError


STEPS = sorted({f.name.split(".")[0] for f in prompts.TEMPLATE_DIR.glob("*.j2")})


def test_every_step_renders_and_has_a_content_hash_version():
    assert {"generate", "distract", "solve", "pick", "judge", "teach", "rerank"} <= set(STEPS)
    for step in STEPS:
        pair = prompts.load(step)
        digest = hashlib.sha256()
        for part in ("system", "user"):
            name = f"{step}.{part}.j2"
            digest.update(name.encode() + b"\0" + (prompts.TEMPLATE_DIR / name).read_bytes() + b"\0")
        assert pair.version == digest.hexdigest()[:12]
    assert len({prompts.load(s).version for s in STEPS}) == len(STEPS)


def test_generator_prompt_has_shared_prefix_and_schema():
    shots = (Shot("1_A", "Adds the numerators and denominators", '{"question": "1/2 + 1/3"}'),)
    gen = QuestionGenerator()
    a = gen.prompt(Target(7, "Thinks a quarter is 0.4", 3, 0, 11, shots))
    b = gen.prompt(Target(8, "Confuses area and perimeter", 3, 0, 12, shots))
    assert a.messages[0] == b.messages[0]  # system message = the cluster's many-shot prefix
    assert "Adds the numerators and denominators" in a.messages[0][1]
    assert "Thinks a quarter is 0.4" in a.messages[1][1]
    assert a.json_schema and set(a.json_schema["required"]) >= {"question", "misconception_answer"}


def test_undefined_variable_is_an_error_not_an_empty_string():
    with pytest.raises(TemplateError, match="prompts/judge: UndefinedError"):
        prompts.load("judge").render(misconception="x")


def test_version_changes_with_content_and_syntax_errors_are_caught(tmp_path):
    for f in prompts.TEMPLATE_DIR.glob("*.j2"):
        shutil.copy(f, tmp_path / f.name)
    before = prompts.load("teach", tmp_path).version
    (tmp_path / "teach.user.j2").write_text("Question: {{ question }}\nAnswer: {{ misconception_answer }}\n")
    prompts.load.cache_clear()
    assert prompts.load("teach", tmp_path).version != before
    (tmp_path / "judge.system.j2").write_text("{% for x in %}")
    with pytest.raises(TemplateError, match="judge.system.j2: line 1"):
        prompts.load("judge", tmp_path)
    prompts.load.cache_clear()
