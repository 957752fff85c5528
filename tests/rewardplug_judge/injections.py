"""The project's corpus of judge-injection responses: it lives in ``benchmarks/injections.py``
(``benchmarks/judge_contrast.py --injection`` measures a real judge with it, and benchmarks
import nothing from ``tests/``); re-exported here under the name the test modules use."""

from benchmarks.injections import HONEST, INJECTIONS, OPEN, QUOTINGS, fenced, injected

__all__ = ["HONEST", "INJECTIONS", "OPEN", "QUOTINGS", "fenced", "injected"]
