"""The plain per-group reference discretizer the fast one must agree with: it lives in
``benchmarks/reference.py`` (``benchmarks/discretize_bench.py`` times against it, and benchmarks
import nothing from ``tests/``); re-exported here under the name the test modules use."""

from benchmarks.reference import pair_probability, reference_discretize

__all__ = ["pair_probability", "reference_discretize"]
