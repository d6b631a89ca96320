"""Column generators: the many-shot question generator, the distractor writer, their shot picker, and the
teacher's rationale writer."""
from generators.distractor import DistractorWriter
from generators.question import GeneratedQuestion, QuestionGenerator, Shot, Target
from generators.rationale import RationaleWriter
from generators.shots import ShotPicker

__all__ = ["DistractorWriter", "GeneratedQuestion", "QuestionGenerator", "RationaleWriter", "Shot", "ShotPicker",
           "Target"]
