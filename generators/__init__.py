"""Column generators: the many-shot question generator, its shot picker, and the teacher's rationale writer."""
from generators.question import GeneratedQuestion, QuestionGenerator, Shot, Target
from generators.rationale import RationaleWriter
from generators.shots import ShotPicker

__all__ = ["GeneratedQuestion", "QuestionGenerator", "RationaleWriter", "Shot", "ShotPicker", "Target"]
