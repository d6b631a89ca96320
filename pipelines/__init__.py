"""Pipelines: the command-line entry points (synth) and the factory engine behind them."""
