"""Adapters for RL frameworks (TRL, verl, OpenRLHF); each imports its framework lazily."""
