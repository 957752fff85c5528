"""Issue 26, item 4: ``code_hack`` sees through names built at run time and flags the resource and
sandbox attacks a reward should never see, without flagging correct code.

* every run-time-name exploit (the issue's three and more of the kind) is flagged, and each
  resource / sandbox attack is flagged, while their honest twins stay clean;
* at least 85 % of each of the project's exploit corpora is flagged (the figures are printed and
  recorded in ``docs/sources/rubric.md``);
* at most 1 % of 1,138 correct programs (HumanEval canonical + MBPP reference) is flagged.
"""

from __future__ import annotations

import pytest
from code_corpora import (
    HONEST_TWINS,
    RUNTIME_NAMES,
    SANDBOX_ATTACKS,
    clean_programs,
    project_corpora,
)
from rewardplug_rubric.code_hack import CodeHack

from rewardplug.types import Sample


def flagged(code: str, prompt: str = "") -> list[str] | None:
    found = CodeHack(kind="code_hack").findings(Sample(prompt=prompt, response=code))
    return None if found is None else [str(f) for f in found]


def test_every_run_time_name_is_resolved_and_flagged():
    missed = {name: code for name, code in RUNTIME_NAMES.items() if not flagged(code)}
    assert not missed, missed
    assert any("os._exit" in f for f in flagged(RUNTIME_NAMES["name_variable"]))
    assert any("/proc/self/environ" in f for f in flagged(RUNTIME_NAMES["proc_concat"]))
    assert any("os.system" in f for f in flagged(RUNTIME_NAMES["getattr_os_system"]))
    assert any("os._exit" in f for f in flagged(RUNTIME_NAMES["exec_reversed"]))
    assert any("os.kill" in f for f in flagged(RUNTIME_NAMES["dunder_import_chr"]))


def test_every_resource_and_sandbox_attack_is_flagged_and_honest_twins_are_not():
    missed = {name: code for name, code in SANDBOX_ATTACKS.items() if not flagged(code)}
    assert not missed, missed
    noisy = {code: flagged(code) for code in HONEST_TWINS if flagged(code) != []}
    assert not noisy, noisy


def test_exploit_corpora_are_flagged_and_correct_programs_are_not():
    """Recall on the project's exploit corpora (>= 85 % each) and precision on 1,138 correct
    programs (<= 1 % flagged; skipped, with the reason, without ../shared/data)."""
    check = CodeHack(kind="code_hack")
    rates = {}
    for corpus, exploits in project_corpora().items():
        missed = sorted(name for name, sample in exploits.items() if not check.check(sample))
        rates[corpus] = (len(exploits) - len(missed), len(exploits), missed)
        print(f"{corpus}: {len(exploits) - len(missed)} / {len(exploits)} flagged; missed {missed}")
    for corpus, (hit, total, missed) in rates.items():
        assert hit >= 0.85 * total, (corpus, hit, total, missed)
    programs = clean_programs()
    if programs is None:
        pytest.skip("../shared/data (HumanEval, MBPP) is absent: clean-code precision not measured")
    assert len(programs) == 1138
    hits = {}
    for task, prompt, code in programs:
        found = flagged(code, prompt)
        if found:
            hits[task] = found
    print(f"{len(hits)} / {len(programs)} correct programs flagged: {hits}")
    assert len(hits) <= 0.01 * len(programs), hits
