"""``rewardplug init``: a commented starter stack and reward module that validate as written.

The stack combines the three kinds of source that need no model or server (a Python function
with its measurement noise, sandboxed test cases and a programmatic rubric), so a new user can
score a first file at once and then swap in a judge or a reward model.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["REWARDS", "SAMPLE", "STACK", "write_starter"]

STACK = """\
# A starter reward stack: written by `rewardplug init`, checked by `rewardplug validate`.
#
#   rewardplug validate stack.yaml
#   rewardplug score stack.yaml samples.jsonl -o scored.jsonl
#
# Each input line is one sample: {"prompt": ..., "response": ..., "group": <prompt id>, ...}.
# Extra fields (here `tests`) go to the sources that use them. The reward is the weighted sum of
# the sources (the weights sum to 2.0, so rewards lie in [0, 2]), then tie-grouped per `group`:
# responses whose scores are not confidently different share one reward.
sources:
  # 1. Your own function (any TRL-style reward function works unchanged): my_rewards.py.
  #    A function returns one number; `noise` says how uncertain that number is, so that two
  #    responses a hair apart are tied instead of ranked by noise.
  - name: brevity
    use: python
    weight: 0.5
    with: {function: "my_rewards:brevity"}
    noise: {std: 0.05}

  # 2. Test cases, run in a sandbox: the pass rate, with a Beta posterior as its uncertainty.
  #    Samples without `tests` abstain here (with the reason); the other sources carry on.
  - name: tests
    use: test_cases
    weight: 1.0
    with: {timeout_s: 5, draws: 32}

  # 3. A rubric of programmatic checks (no judge needed). Criteria without a `check` would be
  #    answered by an LLM judge: add `judge: {backend: openai, model: ..., base_url: ...}`.
  - name: format
    use: rubric
    weight: 0.5
    with:
      rubric:
        name: answer_format
        criteria:
          # category sets the weight: essential 1.0, important 0.7, optional 0.3, pitfall 0.9
          - id: has_code
            text: Shows the code in a fenced block
            category: important
            check: {kind: contains, value: "```"}
          - id: short
            text: Stays under 200 words
            category: optional
            check: {kind: max_words, value: 200}

combine: weighted_sum        # or: min, mean_minus_var (see docs/stacks.md)
on_abstain: abstain          # a sample any source cannot score abstains (never a raised reward)
on_source_failure: warn      # a source failing on a whole batch warns (fail: stops the run)
discretize:
  enabled: true
  confidence: 0.9            # how sure "A beats B" must be before A and B get different rewards
  assign: mean               # each tier's reward: the mean of its members' scores (rank: [0, 1])
"""

REWARDS = '''\
"""Reward functions for stack.yaml (written by `rewardplug init`): edit or add your own.

A reward function takes the batch as TRL passes it -- ``prompts``, ``completions`` and any extra
sample fields as keyword lists -- and returns one number per completion (or a list of draws, or
None to abstain with "returned None").
"""


def brevity(prompts, completions, **columns):
    """1.0 for answers up to 100 words, falling linearly to 0.0 at 300 words."""
    rewards = []
    for completion in completions:
        words = len(completion.split())
        rewards.append(max(0.0, min(1.0, (300 - words) / 200)))
    return rewards
'''

SAMPLE = """\
{"id": "add-1", "group": "add", "prompt": "Write add(a, b).", "response": "```python\\ndef add(a, b):\\n    return a + b\\n```", "tests": {"kind": "call", "entry_point": "add", "cases": [{"args": [1, 2], "expected": 3}, {"args": [-1, 1], "expected": 0}, {"args": [2.5, 0.5], "expected": 3.0}]}}
{"id": "add-2", "group": "add", "prompt": "Write add(a, b).", "response": "```python\\ndef add(a, b):\\n    return a - b\\n```", "tests": {"kind": "call", "entry_point": "add", "cases": [{"args": [1, 2], "expected": 3}, {"args": [-1, 1], "expected": 0}, {"args": [2.5, 0.5], "expected": 3.0}]}}
{"id": "add-3", "group": "add", "prompt": "Write add(a, b).", "response": "def add(a, b): return a + b", "tests": {"kind": "call", "entry_point": "add", "cases": [{"args": [1, 2], "expected": 3}, {"args": [-1, 1], "expected": 0}, {"args": [2.5, 0.5], "expected": 3.0}]}}
"""

FILES = {"stack.yaml": STACK, "my_rewards.py": REWARDS, "samples.jsonl": SAMPLE}


def write_starter(folder: str | Path, overwrite: bool = False) -> list[Path]:
    """Write the starter files into ``folder``; refuses to replace a file unless ``overwrite``."""
    folder = Path(folder)
    targets = [folder / name for name in FILES]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise FileExistsError(f"{names} already exist; pass --overwrite to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets:
        path.write_text(FILES[path.name], encoding="utf-8")
    return targets
