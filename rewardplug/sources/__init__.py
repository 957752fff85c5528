"""Reward sources shipped with the core distribution (registered like any other plugin)."""
