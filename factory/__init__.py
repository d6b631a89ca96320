"""The synthetic-data engine as a library: the run's data (``world``), its plan, its stages and the engine
that runs them; ``pipelines.synth`` is only its command line."""
from factory.config import DEFAULT_CHECKS, DEFAULT_MODE, MODES, RATIONALES, SynthConfig
from factory.engine import Engine, RunFailed, checks_key, checks_key_of_config, run
from factory.plan import item_key, item_seed, plan
from factory.stage import Context, Item, Reject
from factory.stages import CHECKS, stages_for
from factory.world import ConfigError, World, list_clusters, prepare

__all__ = ["CHECKS", "ConfigError", "checks_key", "checks_key_of_config", "Context", "DEFAULT_CHECKS", "DEFAULT_MODE", "Engine", "Item", "MODES",
           "RATIONALES", "Reject", "RunFailed", "SynthConfig", "World", "item_key", "item_seed", "list_clusters",
           "plan", "prepare", "run", "stages_for"]
