"""The ``test_cases`` source: the pass rate of model-written code on test cases, with a Beta posterior.

Per sample: extract the code (:mod:`.extract`), parse ``Sample.tests`` (:mod:`.formats`), run the
cases in the sandbox pool (:mod:`.pool`, :mod:`.sandbox`), and decide every case here, in the
trusted parent, by strict comparison of decoded plain values (:mod:`.protocol`).

``value`` = passed / total; ``draws`` are the K evenly spaced quantiles of the posterior
Beta(passed + 1/2, failed + 1/2) (or, with ``posterior: random``, K draws seeded by the sample id),
so a sample's draws never depend on the rest of its batch nor, by default, on its id.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from rewardplug import RewardSource, Sample, Score, SourceConfig
from rewardplug.plugin_api import Input
from rewardplug_code import protocol, sandbox
from rewardplug_code.extract import CodeError, extract_code
from rewardplug_code.formats import (
    TESTS_KEYS,
    Case,
    Plan,
    TestsError,
    parse_tests,
    prompt_definitions,
)
from rewardplug_code.pool import Pool, WorkerError

log = logging.getLogger(__name__)

__all__ = ["TestCasesSource", "beta_draws"]

_MAX_FAILURES_SHOWN = 5
_warned: set[str] = set()


def beta_draws(
    passed: int, failed: int, k: int, seed: int, key: str, kind: str = "quantiles"
) -> list[float]:
    """K draws representing Beta(passed + 1/2, failed + 1/2) (the Jeffreys posterior).

    ``quantiles`` (default): the posterior's quantiles at (j + 1/2) / K -- the same K numbers for
    every sample with the same counts, so whether 1/1 beats 0/1 never depends on Monte Carlo
    noise or on a sample's id. ``random``: K random draws seeded by ``seed`` and ``key`` only.
    """
    import numpy as np

    a, b = passed + 0.5, failed + 0.5
    if kind == "quantiles":
        from scipy.special import betaincinv

        return [float(x) for x in betaincinv(a, b, (np.arange(k) + 0.5) / k)]
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8", "surrogatepass"), digest_size=8)
    rng = np.random.default_rng(int.from_bytes(digest.digest(), "big"))
    return [float(x) for x in rng.beta(a, b, size=k)]


def _fallback_warning(level: str) -> str:
    """The one warning of a process that falls back from bubblewrap: why, and what still holds."""
    landlock = (
        ", Landlock (files read-only, data and home unreadable)"
        if level == sandbox.LEVEL_LANDLOCK
        else ""
    )
    return (
        f"test_cases: bubblewrap is unavailable ({sandbox.bwrap_unavailable_reason()}); candidate "
        f"code runs at the fallback level {level!r}: seccomp allow-list (no network, signals, "
        f"tracing or new processes), rlimits{landlock}, an unprivileged user when run as root, "
        "and a PID namespace per submission where the kernel allows one. Install bubblewrap "
        "for mount and network namespaces as well."
    )


class TestCasesSource(RewardSource):
    """Run the response's Python code against ``Sample.tests`` in a sandbox; reward = pass rate."""

    __test__ = False  # not a pytest test class, despite the name

    class Config(SourceConfig):
        timeout_s: float = Field(5.0, gt=0, le=600)
        """Wall-clock limit per case (seconds); a case that runs longer fails."""
        total_timeout_s: float = Field(60.0, gt=0, le=3600)
        """Wall-clock budget per submission; cases not run when it is spent fail."""
        memory_mb: int = Field(1024, ge=64)
        """Address-space limit of the process running the code (MiB)."""
        output_bytes: int = Field(1_000_000, ge=1024)
        """Cap on one case's returned value or printed output (bytes); larger fails the case."""
        max_code_bytes: int = Field(200_000, ge=1024)
        """Responses whose code is larger fail without running."""
        workers: int | None = Field(None, ge=1)
        """Warm sandbox workers (default: four per usable core, at most 64: workers spend much of
        their time waiting, on pipes and on wall-clock timeouts of looping code)."""
        draws: int = Field(32, ge=1, le=10_000)
        """K, the number of posterior draws per sample."""
        posterior: Literal["quantiles", "random"] = "quantiles"
        """How the draws represent the pass-rate posterior: its K evenly spaced quantiles
        (deterministic: equal counts always give equal draws) or K seeded random draws."""
        seed: int = 0
        """Seed of the posterior draws (combined with each sample's id)."""
        prepend_prompt: bool = False
        """Run prompt + response (completions that continue the prompt, as in HumanEval)."""
        stop: list[str] = Field(default_factory=list)
        """Truncate the response at the first of these strings (raw completions)."""
        isolation: Literal["auto", "bwrap", "rlimits+seccomp"] = "auto"
        """``auto`` uses bubblewrap when it works, else rlimits + seccomp (with a warning)."""

    config: Config
    transient = ("_pool",)

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self._pool: Pool | None = None

    # ------------------------------------------------------------------ resources

    @property
    def pool(self) -> Pool:
        """The warm worker pool, started on first use."""
        if self._pool is None:
            cfg = self.config
            level = sandbox.isolation_level(cfg.isolation)
            if level == sandbox.LEVEL_RLIMITS:
                # rlimits alone leave the network, signals and tracing open: refuse the level
                raise RuntimeError(
                    "no safe isolation level: bubblewrap does not work here "
                    f"({sandbox.bwrap_unavailable_reason() or 'not probed'}) and the seccomp "
                    "fallback needs libseccomp (Debian/Ubuntu package 'libseccomp2') and pyseccomp "
                    "(pip install 'rewardplug[code]')"
                )
            if level != sandbox.LEVEL_BWRAP and cfg.isolation == "auto" and level not in _warned:
                _warned.add(level)
                log.warning(_fallback_warning(level))
            limits = sandbox.Limits(
                cfg.memory_mb,
                int(cfg.total_timeout_s) + 2,
                cfg.output_bytes,
                sandbox.read_only_paths() if level == sandbox.LEVEL_LANDLOCK else None,
            )
            size = cfg.workers or min(64, 4 * len(os.sched_getaffinity(0)))
            self._pool = Pool(level, limits, size)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------ scoring

    def inputs(self) -> Sequence[Input]:
        """``tests``: a mapping of one of the formats of :mod:`rewardplug_code.formats`."""
        return (Input("tests", check=parse_tests, keys=TESTS_KEYS),)

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        scores: list[Score | None] = [None] * len(samples)
        prepared: list[tuple[int, Plan, str]] = []
        for i, sample in enumerate(samples):
            try:
                plan = parse_tests(sample.tests)
            except TestsError as exc:
                scores[i] = Score.abstain(str(exc))
                continue
            if plan.total == 0:
                scores[i] = Score.abstain("the tests hold zero cases")
                continue
            try:
                code = extract_code(
                    sample.response,
                    sample.prompt if isinstance(sample.prompt, str) else None,
                    prepend_prompt=self.config.prepend_prompt,
                    stop=self.config.stop,
                    max_bytes=self.config.max_code_bytes,
                )
            except CodeError as exc:
                scores[i] = self._verdicts(sample, plan, [str(exc)] * plan.total, code_error=True)
                continue
            prepared.append((i, plan, code))
        if prepared:
            try:
                pool = self.pool
            except Exception as exc:  # the sandbox cannot start at all
                reason = f"the sandbox is unavailable: {type(exc).__name__}: {exc}"
                for i, _, _ in prepared:
                    scores[i] = Score.abstain(reason)
                return scores  # type: ignore[return-value]
            self._run(samples, prepared, pool, scores)
        return scores  # type: ignore[return-value]

    def _run(
        self,
        samples: Sequence[Sample],
        prepared: list[tuple[int, Plan, str]],
        pool: Pool,
        scores: list[Score | None],
    ) -> None:
        jobs: list[dict[str, Any]] = []
        owners: list[int] = []
        for slot, (i, plan, code) in enumerate(prepared):
            for job in self._jobs(plan, code, samples[i]):
                job["id"] = len(jobs)
                jobs.append(job)
                owners.append(slot)
        backstop = [j["total_timeout"] + j["load_timeout"] + 15.0 for j in jobs]
        replies = pool.run(jobs, backstop)
        per_sample: dict[int, list[Any]] = {}
        for slot, reply in zip(owners, replies, strict=True):
            per_sample.setdefault(slot, []).append(reply)
        for slot, (i, plan, _) in enumerate(prepared):
            got = per_sample.get(slot, [])
            broken = [r for r in got if not isinstance(r, dict) or "machinery" in r]
            if broken:
                why = broken[0] if isinstance(broken[0], WorkerError) else broken[0]["machinery"]
                scores[i] = Score.abstain(
                    f"sandbox machinery failed: {why}", isolation=pool.isolation
                )
                continue
            try:
                outcomes = self._decide(plan, got)
            except _TestCodeFailed as exc:  # the tests' own fault: no verdict on the candidate
                scores[i] = Score.abstain(str(exc), isolation=pool.isolation)
                continue
            scores[i] = self._verdicts(samples[i], plan, outcomes, isolation=pool.isolation)

    def _jobs(self, plan: Plan, code: str, sample: Sample) -> list[dict[str, Any]]:
        cfg = self.config
        base = {
            "code": code,
            "entry_point": plan.entry_point,
            "timeout": cfg.timeout_s,
            "load_timeout": cfg.timeout_s,
            "result_bytes": cfg.output_bytes,
            "tuples": plan.tuples,
        }
        jobs = []
        if plan.cases and plan.kind == "stdio":
            n = len(plan.cases)
            jobs.append(
                {
                    **base,
                    "mode": "stdio",
                    "n": n,
                    "cases": [],
                    "stdin": [c.stdin for c in plan.cases],
                    "total_timeout": cfg.total_timeout_s,
                }
            )
        elif plan.cases:
            cases = [protocol.encode_args(c.args, c.kwargs) for c in plan.cases]
            jobs.append(
                {
                    **base,
                    "mode": "call",
                    "n": len(cases),
                    "cases": cases,
                    "total_timeout": cfg.total_timeout_s,
                }
            )
        if plan.check_code:
            # the prompt is trusted like the tests: what they need of it runs before them
            prelude = prompt_definitions(sample.prompt, plan.needs, plan.entry_point)
            jobs.append(
                {
                    **base,
                    "mode": "check",
                    "n": 1,
                    "cases": [],
                    "check_code": plan.check_code,
                    "prelude": prelude,
                    "timeout": cfg.total_timeout_s,
                    "total_timeout": cfg.total_timeout_s,
                }
            )
        return jobs

    def _decide(self, plan: Plan, replies: list[dict[str, Any]]) -> list[str | None]:
        """Per case: None when it passed, else why it failed. Decided here, nowhere else."""
        pending = list(replies)
        outcomes: list[str | None] = []
        n_cases = len(plan.cases)
        if n_cases:
            outcomes += self._compare_cases(plan, pending.pop(0), n_cases)
        if plan.check_code:
            outcomes += self._compare_check(pending.pop(0))
        return outcomes

    def _compare_cases(self, plan: Plan, reply: dict[str, Any], n: int) -> list[str | None]:
        if reply.get("violation"):
            return [f"protocol violation: {protocol.safe_text(reply['violation'])}"] * n
        results, faults = reply.get("results"), reply.get("faults")
        if not isinstance(results, list) or not isinstance(faults, list) or len(results) != n:
            return ["protocol violation: wrong number of results"] * n
        out: list[str | None] = []
        for case, raw, fault in zip(plan.cases, results, faults, strict=True):
            if fault:
                out.append(protocol.safe_text(fault))
                continue
            got = protocol.decode(raw)
            if not got.ok:
                out.append(got.error)
                continue
            try:
                passed = _passes(case, got.value, plan.atol)
            except (ArithmeticError, RecursionError, ValueError, TypeError, MemoryError) as exc:
                # a hostile value fails its own case; it never fails the batch
                out.append(f"result could not be compared: {type(exc).__name__}")
                continue
            out.append(None if passed else "wrong answer")
        return out

    @staticmethod
    def _compare_check(reply: dict[str, Any]) -> list[str | None]:
        if reply.get("violation"):
            return [f"protocol violation: {protocol.safe_text(reply['violation'])}"]
        results, faults = reply.get("results") or [None], reply.get("faults") or [None]
        if faults[0]:
            return [f"hardened check: {protocol.safe_text(faults[0])}"]
        failed = protocol.test_code_failure(results[0])
        if failed is not None:
            raise _TestCodeFailed(failed)
        got = protocol.decode(results[0])
        if not got.ok:
            return [got.error]
        return [None if got.value is True else "hardened check: malformed verdict"]

    def _verdicts(
        self,
        sample: Sample,
        plan: Plan,
        outcomes: list[str | None],
        *,
        isolation: str | None = None,
        code_error: bool = False,
    ) -> Score:
        total = len(outcomes)
        passed = sum(o is None for o in outcomes)
        failures = [{"case": i, "reason": o} for i, o in enumerate(outcomes) if o is not None][
            :_MAX_FAILURES_SHOWN
        ]
        detail: dict[str, Any] = {
            "passed": passed,
            "total": total,
            "kind": plan.kind,
            "failures": failures,
        }
        if isolation:
            detail["isolation"] = isolation
        if code_error:
            detail["reason"] = outcomes[0]
        if plan.check_code:
            detail["hardened"] = (
                f"{plan.unconverted} assert(s) could not be converted to cases; they ran as one "
                "hardened case (test code in a trusted checker, candidate answering over a pipe)"
            )
            detail["converted"] = len(plan.cases)
        cfg = self.config
        draws = beta_draws(passed, total - passed, cfg.draws, cfg.seed, sample.id, cfg.posterior)
        return Score(value=passed / total, draws=draws, detail=detail)


class _TestCodeFailed(Exception):
    """The hardened check's test code failed by itself (the sample abstains)."""


def _passes(case: Case, value: Any, atol: float) -> bool:
    if case.compare == "eq":
        return protocol.equal(value, case.expected, atol)
    if case.compare == "tol":
        return protocol.within(value, case.expected, case.tol, case.inclusive)
    if case.compare == "truthy":
        return bool(value)
    if case.compare == "falsy":
        return not value
    if case.compare == "stdout":
        return type(value) is str and protocol.stdout_equal(value, case.expected)
    return False
