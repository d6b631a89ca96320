"""The synthetic-data engine as a library: the run's data (``world``), its plan, its modes and checks, the
engine that runs a task of items through the stages, the executors, and the runner; ``pipelines.synth`` is
only its command line."""
from factory.cards import write_cards
from factory.checks import CHECKS
from factory.config import DEFAULT_CHECKS, RATIONALES, SynthConfig
from factory.context import Context, Item, Reject
from factory.engine import Engine, checks_key, checks_key_of_config
from factory.modes import DEFAULT_MODE, MODES, Mode
from factory.stages import stages_for
from factory.plan import item_key, item_seed, plan
from factory.runner import RunFailed, run
from factory.world import ConfigError, World, list_clusters, prepare

__all__ = ["write_cards", "CHECKS", "ConfigError", "checks_key", "checks_key_of_config", "Context", "DEFAULT_CHECKS", "DEFAULT_MODE",
           "Engine", "Item", "MODES", "Mode", "RATIONALES", "Reject", "RunFailed", "SynthConfig", "World", "item_key",
           "item_seed", "list_clusters", "plan", "prepare", "run", "stages_for"]
