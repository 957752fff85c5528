"""The ``neural_rm`` source: a Hugging Face reward model with Monte Carlo dropout draws.

``value`` is the deterministic (eval-mode) score; ``draws`` are K forward passes with dropout
active only at dropout sites (see :mod:`rewardplug_neural.dropout`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from rewardplug import Sample, Score
from rewardplug_neural.common import Loaded, MCConfig, MCSource
from rewardplug_neural.encode import Encoded, buckets, encode_chat, encode_pair, has_chat_template
from rewardplug_neural.loading import load_classifier
from rewardplug_neural.masks import sample_key

__all__ = ["NeuralRMSource"]


class NeuralRMSource(MCSource):
    """Scores (prompt, response) with a sequence-classification reward model and MC dropout."""

    class Config(MCConfig):
        classifier = True
        head_index: int | None = Field(None, ge=0)
        """Which output of a multi-output head is the reward (required when it has > 1)."""
        chat_template: Literal["auto", "always", "never"] = "auto"
        """``auto``: use the tokenizer's chat template when it has one, else sentence pairs."""

    config: Config

    # -- loading -----------------------------------------------------------------------------
    def _build(self) -> Loaded:
        cfg = self.config
        model, tokenizer = load_classifier(cfg.model, cfg.device, cfg.dtype)
        n_out = int(getattr(model.config, "num_labels", 1))
        head = cfg.head_index if cfg.head_index is not None else 0
        if cfg.head_index is None and n_out > 1:
            raise ValueError(
                f"model {cfg.model!r} has {n_out} outputs; set head_index to the reward output"
            )
        if head >= n_out:
            raise ValueError(f"head_index {head} but model {cfg.model!r} has {n_out} outputs")
        if tokenizer.pad_token_id is None:
            # Decoder RMs often lack a pad token; the model finds the last real token itself.
            tokenizer.pad_token = tokenizer.eos_token
            model.config.pad_token_id = tokenizer.pad_token_id

        def readout(out: Any, batch: dict[str, Any]) -> Any:
            return out.logits[:, head : head + 1]

        use_chat = cfg.chat_template == "always" or (
            cfg.chat_template == "auto" and has_chat_template(tokenizer)
        )
        loaded = self._assemble(model, tokenizer, readout, chat=use_chat)
        if cfg.mc_samples > 1 and loaded.controller.max_rate() <= 0.0:
            raise ValueError(
                f"model {cfg.model!r} has no active dropout: set dropout_rate or mc_samples: 1"
            )
        return loaded

    # -- scoring -----------------------------------------------------------------------------
    def score(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        loaded = self.load()
        cfg = self.config
        results: list[Score | None] = [None] * len(samples)
        encoded: dict[int, Encoded] = {}
        for i, s in enumerate(samples):
            try:
                encoded[i] = self._encode(loaded, s)
            except Exception as exc:
                results[i] = Score.error(f"could not tokenize: {type(exc).__name__}: {exc}")
        idx = list(encoded)
        with loaded.lock:
            for chunk in buckets([len(encoded[i].input_ids) for i in idx], cfg.batch_size):
                members = [idx[j] for j in chunk]
                for i, score in zip(
                    members, self._score_batch(loaded, samples, encoded, members), strict=True
                ):
                    results[i] = score
        return [r if r is not None else Score.error("not scored") for r in results]

    def _encode(self, loaded: Loaded, sample: Sample) -> Encoded:
        tok, limit = loaded.tokenizer, self.config.max_length
        if loaded.extra["chat"]:
            return encode_chat(tok, sample.prompt, sample.response, limit)
        return encode_pair(tok, sample.prompt_text, sample.response, limit)

    def _score_batch(
        self,
        loaded: Loaded,
        samples: Sequence[Sample],
        encoded: dict[int, Encoded],
        members: list[int],
    ) -> list[Score]:
        try:
            keys = [sample_key(samples[i].prompt_text, samples[i].response) for i in members]
            result = self._forward(loaded, [encoded[i] for i in members], keys)
        except Exception as exc:
            if len(members) > 1:  # isolate the culprit
                return [
                    s for i in members for s in self._score_batch(loaded, samples, encoded, [i])
                ]
            return [Score.error(f"forward pass failed: {type(exc).__name__}: {exc}")]
        scores = []
        for row, i in enumerate(members):
            value = float(result.values[row, 0])
            draws = [float(x) for x in result.draws[row, :, 0]]
            detail = {**encoded[i].detail(), **self._mc_detail()}
            if samples[i].response == "":
                detail["empty_response"] = True
            bad = sum(not math.isfinite(x) for x in draws)
            if not math.isfinite(value) or bad:
                scores.append(
                    Score.abstain(
                        f"reward model produced non-finite logits (value={value}, {bad} of "
                        f"{len(draws)} draws); try dtype float32",
                        **detail,
                    )
                )
                continue
            scores.append(Score(value=value, draws=draws, detail=detail))
        return scores
