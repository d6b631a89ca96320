"""Prompt templates (Jinja, strict undefined). A template's content hash is its version.

Each LLM step has a pair of files, ``<step>.system.j2`` and ``<step>.user.j2``.
For the generator the system message is the cluster-wide many-shot prefix and
the user message names the target, so every request of a cluster shares one
long prefix that the backend can keep in its KV cache.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATE_DIR = Path(__file__).parent


class TemplateError(Exception):
    """A template is missing, does not parse, or uses an undefined variable. One line."""


@lru_cache(maxsize=None)
def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


@dataclass(frozen=True)
class PromptPair:
    step: str
    version: str  # first 12 hex digits of sha256(system source + user source)
    directory: Path = TEMPLATE_DIR

    def render(self, **context) -> tuple[str, str]:
        env = _environment(self.directory)
        try:
            system = env.get_template(f"{self.step}.system.j2").render(**context)
            user = env.get_template(f"{self.step}.user.j2").render(**context)
        except jinja2.TemplateError as e:
            raise TemplateError(f"prompts/{self.step}: {type(e).__name__}: {e}") from None
        return system.strip(), user.strip()


@lru_cache(maxsize=None)
def load(step: str, directory: Path = TEMPLATE_DIR) -> PromptPair:
    """Load (and syntax-check) a step's templates."""
    digest = hashlib.sha256()
    for part in ("system", "user"):
        name = f"{step}.{part}.j2"
        path = directory / name
        if not path.is_file():
            raise TemplateError(f"prompts/{name}: template not found")
        source = path.read_text(encoding="utf-8")
        try:
            _environment(directory).parse(source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"prompts/{name}: line {e.lineno}: {e.message}") from None
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return PromptPair(step=step, version=digest.hexdigest()[:12], directory=directory)
