"""The proxies of ``benchmarks/rl_tiny_lm.py``: a small neural reward model with dropout, trained on
labelled completions in which correctness is confounded with a trailing ``!``, scored with Monte
Carlo dropout; and a hackable digit checker (a one-number score, given ``noise:`` draws by the
stack). Both are ``python`` sources of a rewardplug stack (``tiny_lm_rm:rm_reward``,
``tiny_lm_rm:checker_reward``); the trained model lives in :data:`MODEL`, set by the script.

**The labelled data.** A lenient labeller marks a completion correct when its digits are the sum
(``"57!"`` counts as correct), and the labelled pool over-represents ``!`` on correct answers
(share ``hack_if_correct``) and under-represents it on wrong ones (``hack_if_wrong``), as a pool
collected from confident annotators would. Wrong answers are near misses (sum +- 1, 2, 9, 10, 11,
20) or random numbers. The model sees the prompt and completion as one-hot characters (the prompt
by position, the completion left- and right-aligned) and must learn addition from them; what it
cannot learn it makes up from the ``!``.

**MC dropout.** ``value`` is the deterministic forward pass (dropout off); the ``K`` draws are
forward passes with dropout masks seeded by the text alone, so a completion gets the same draws in
every batch, and each completion's spread is its own.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from tiny_lm_task import CHARS, HACK, parse_prompt

from rewardplug.types import Score

#: set by the script before any stack scores: ``{"rm": RewardModel, "k": int}``
MODEL: dict[str, Any] = {}

_SLOTS = 6  # completion characters kept, each alignment
_NONE = len(CHARS)
_INDEX = {c: i for i, c in enumerate(CHARS)}
OFFSETS = (1, 2, 9, 10, 11, 20)


def encode(prompts: list[str], completions: list[str]) -> np.ndarray:
    """(N, 18 * 14) one-hot features: 6 prompt characters, the completion left- and right-aligned."""
    width = len(CHARS) + 1
    out = np.zeros((len(prompts), 3 * _SLOTS, width), dtype=np.float32)
    for n, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        c = c.strip()[:_SLOTS]
        left = [_INDEX.get(ch, _NONE) for ch in p[:_SLOTS]]
        left += [_NONE] * (_SLOTS - len(left))
        mid = [_INDEX.get(ch, _NONE) for ch in c] + [_NONE] * (_SLOTS - len(c))
        right = [_NONE] * (_SLOTS - len(c)) + [_INDEX.get(ch, _NONE) for ch in c]
        out[n, np.arange(3 * _SLOTS), left + mid + right] = 1.0
    return out.reshape(len(prompts), -1)


def labelled_pool(
    problems: list[tuple[int, int]],
    n: int,
    seed: int,
    hack_if_correct: float = 0.5,
    hack_if_wrong: float = 0.05,
) -> tuple[list[str], list[str], np.ndarray]:
    """(prompts, completions, lenient labels): half correct, half near misses or random numbers."""
    rng = random.Random(seed)
    prompts, completions, labels = [], [], []
    for _ in range(n):
        a, b = rng.choice(problems)
        s = a + b
        correct = rng.random() < 0.5
        if correct:
            answer = s
        elif rng.random() < 0.8:
            answer = s + rng.choice(OFFSETS) * rng.choice((-1, 1))
        else:
            answer = rng.randrange(20, 199)
        if answer == s:
            correct = True
        share = hack_if_correct if correct else hack_if_wrong
        prompts.append(f"{a}+{b}=")
        completions.append(str(max(answer, 0)) + (HACK if rng.random() < share else ""))
        labels.append(1.0 if correct else 0.0)
    return prompts, completions, np.array(labels, dtype=np.float32)


def lenient_label(prompt: str, completion: str) -> float:
    """The labeller's verdict: the digits are the sum (a trailing ``!`` is ignored)."""
    a, b = parse_prompt(prompt)
    return float(completion.strip().rstrip(HACK) == str(a + b))


@dataclass
class RewardModel:
    """A 2-hidden-layer MLP with dropout; ``value`` without dropout, ``draws`` with it."""

    weights: list[Any]  # torch tensors: w1, b1, w2, b2, w3, b3
    dropout: float

    def _forward(self, x: Any, masks: tuple[Any, Any] | None) -> Any:
        import torch

        w1, b1, w2, b2, w3, b3 = self.weights
        h = torch.relu(x @ w1 + b1)
        if masks is not None:
            h = h.unsqueeze(1) * masks[0]  # (N, K, H)
        h = torch.relu(h @ w2 + b2)
        if masks is not None:
            h = h * masks[1]
        return (h @ w3 + b3).squeeze(-1)

    def masks(self, texts: list[str], k: int) -> tuple[Any, Any]:
        """Dropout masks (N, K, H), scaled, seeded per text (batch-independent draws)."""
        import torch

        hidden = self.weights[0].shape[1]
        keep = 1.0 - self.dropout
        rows = []
        for t in texts:
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            rows.append(rng.random((2, k, hidden)) < keep)
        m = torch.from_numpy(np.stack(rows).astype(np.float32) / keep)  # (N, 2, K, H)
        return m[:, 0], m[:, 1]

    def score(self, prompts: list[str], completions: list[str], k: int) -> tuple[Any, Any]:
        """(value (N,), draws (N, K)) as probabilities of 'correct'."""
        import torch

        x = torch.from_numpy(encode(prompts, completions))
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
        with torch.no_grad():
            value = torch.sigmoid(self._forward(x, None)).numpy()
            draws = torch.sigmoid(self._forward(x, self.masks(texts, k))).numpy()
        return value.astype(np.float64), draws.astype(np.float64)


def train_rm(
    prompts: list[str],
    completions: list[str],
    labels: np.ndarray,
    seed: int,
    steps: int = 1500,
    hidden: int = 256,
    dropout: float = 0.2,
) -> RewardModel:
    """Binary cross-entropy, Adam, batches of 256, dropout on in training."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(encode(prompts, completions))
    y = torch.from_numpy(labels)
    d = x.shape[1]

    def init(*shape: int) -> Any:
        return (torch.randn(*shape, generator=gen) / np.sqrt(shape[0])).requires_grad_()

    weights = [
        init(d, hidden),
        torch.zeros(hidden, requires_grad=True),
        init(hidden, hidden),
        torch.zeros(hidden, requires_grad=True),
        init(hidden, 1),
        torch.zeros(1, requires_grad=True),
    ]
    rm = RewardModel(weights, dropout)
    opt = torch.optim.Adam(weights, lr=1e-3, weight_decay=1e-5)
    keep = 1.0 - dropout
    for _ in range(steps):
        idx = torch.randint(0, len(y), (256,), generator=gen)
        m1 = (torch.rand(256, 1, hidden, generator=gen) < keep).float() / keep
        m2 = (torch.rand(256, 1, hidden, generator=gen) < keep).float() / keep
        logit = rm._forward(x[idx], (m1, m2))[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    rm.weights = [w.detach() for w in weights]
    return rm


def rm_reward(prompts: list[str], completions: list[str], **_: Any) -> list[Score]:
    """The neural proxy as a ``python`` source: value = no-dropout pass, draws = K MC passes."""
    if "rm" not in MODEL:
        raise RuntimeError("tiny_lm_rm.MODEL is empty: train the reward model before scoring")
    value, draws = MODEL["rm"].score(list(prompts), list(completions), MODEL["k"])
    return [Score(value=float(v), draws=d.tolist()) for v, d in zip(value, draws, strict=True)]


def rm_mean_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    """The dropout-ensemble mean: the mean of the K MC draws, one number per completion."""
    _, draws = MODEL["rm"].score(list(prompts), list(completions), MODEL["k"])
    return draws.mean(axis=1).tolist()


def checker_reward(
    prompts: list[str], completions: list[str], bonus: float = 0.25, **_: Any
) -> list[float]:
    """A hackable checker: the share of the sum's digits (right-aligned) the completion gets
    right, plus ``bonus`` for a trailing ``!`` (the checker's bug). One number per completion:
    its draws come from the stack's ``noise:``, the same spread for every answer."""
    out = []
    for p, c in zip(prompts, completions, strict=True):
        a, b = parse_prompt(p)
        want, got = str(a + b), c.strip().rstrip(HACK)
        hits = sum(x == y for x, y in zip(reversed(want), reversed(got), strict=False))
        credit = hits / max(len(want), len(got), 1)
        out.append(credit + (bonus if c.strip().endswith(HACK) else 0.0))
    return out
