"""The MC-dropout forward passes: one deterministic pass, then K stochastic ones, batched.

For a batch of B inputs the engine runs

1. one eval-mode pass (the ``value``), capturing the hidden states entering layer ``n - N`` when
   ``mc_layers: N`` is set;
2. B x K stochastic rows (the K copies of each input, ``repeat_interleave``-d) in chunks of at
   most ``rows_per_forward`` rows, each row with its own mask key. With ``mc_layers: N`` the lower
   layers are skipped: the layer stack is temporarily cut to its top N layers and the captured
   hidden states are fed into the first of them, so only the top N layers and the head run K times.

``readout(outputs, batch)`` turns model outputs into a ``(rows, D)`` tensor (a logit column, or
pooled embeddings). On a CUDA out-of-memory error the chunk is halved and retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rewardplug_neural.dropout import MCController
from rewardplug_neural.masks import row_keys

__all__ = ["MCEngine", "MCResult"]


@dataclass
class MCResult:
    """Deterministic readouts ``(B, D)`` and stochastic ones ``(B, K, D)`` (float32, CPU)."""

    values: Any
    draws: Any


class MCEngine:
    """Runs deterministic + MC-dropout passes of one prepared model."""

    def __init__(self, model: Any, controller: MCController, readout: Callable[[Any, dict], Any]):
        self.model = model
        self.ctrl = controller
        self.readout = readout
        # Decoder models would otherwise build a KV cache nobody reads.
        self.call_kwargs = {"use_cache": False} if _accepts(model, "use_cache") else {}

    def top_layers(self, mc_layers: int | str) -> int:
        """How many top layers sample (all of them for ``"all"`` or N >= n_layers)."""
        if mc_layers == "all" or int(mc_layers) >= self.ctrl.n_layers:
            return self.ctrl.n_layers
        return int(mc_layers)

    def run(
        self,
        batch: dict[str, Any],
        keys: list[int],
        mc_samples: int,
        seed: int,
        mc_layers: int | str = "all",
        rows_per_forward: int | None = None,
        reuse_lower: bool = True,
    ) -> MCResult:
        """Deterministic readouts and ``mc_samples`` stochastic readouts for every input.

        ``keys`` (one per input) fix the dropout masks; ``reuse_lower=False`` runs the full model
        even with ``mc_layers`` set (same draws, no caching: used to check the cache).
        """
        import torch

        n_top = self.top_layers(mc_layers)
        cut = n_top < self.ctrl.n_layers
        with torch.inference_mode():
            cache: dict[str, Any] = {}
            capture = self._capture(cut and reuse_lower, self.ctrl.n_layers - n_top, cache)
            with capture:
                values = self.readout(self.model(**batch, **self.call_kwargs), batch).float()
            if mc_samples <= 1:
                return MCResult(values.cpu(), values.unsqueeze(1).cpu())
            k = mc_samples
            rows = batch["input_ids"].shape[0] * k
            per = max(1, rows_per_forward or rows)
            rep = {name: t.repeat_interleave(k, dim=0) for name, t in batch.items()}
            hidden = cache["hidden"].repeat_interleave(k, dim=0) if "hidden" in cache else None
            all_keys = row_keys(
                [x for x in keys for _ in range(k)], list(range(k)) * len(keys), seed
            )
            key_t = torch.tensor(all_keys, dtype=torch.int64, device=batch["input_ids"].device)
            min_depth = self.ctrl.n_layers - n_top if cut else -1
            outs: list[Any] = []
            start = 0
            while start < rows:
                stop = min(rows, start + per)
                chunk = {name: t[start:stop] for name, t in rep.items()}
                try:
                    with self.ctrl.sampling(key_t[start:stop], min_depth):
                        if hidden is not None:
                            with self._top_only(n_top, hidden[start:stop]):
                                out = self.model(**chunk, **self.call_kwargs)
                        else:
                            out = self.model(**chunk, **self.call_kwargs)
                        outs.append(self.readout(out, chunk).float())
                except torch.cuda.OutOfMemoryError:
                    if per == 1:
                        raise
                    per = max(1, per // 2)
                    torch.cuda.empty_cache()
                    continue
                start = stop
            draws = torch.cat(outs).view(len(keys), k, -1)
        return MCResult(values.cpu(), draws.cpu())

    @contextlib.contextmanager
    def _capture(self, enabled: bool, layer_index: int, cache: dict[str, Any]) -> Iterator[None]:
        """Record the hidden states entering layer ``layer_index`` during the next forward."""
        if not enabled:
            yield
            return

        def hook(module: Any, args: Any, kwargs: Any) -> None:
            cache["hidden"] = args[0] if args else kwargs["hidden_states"]

        handle = self.ctrl.layers[layer_index].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    @contextlib.contextmanager
    def _top_only(self, n_top: int, hidden: Any) -> Iterator[None]:
        """Cut the layer stack to its top ``n_top`` layers, feeding them ``hidden``."""
        import torch

        full = self.ctrl.layers
        top = list(full)[len(full) - n_top :]

        def hook(module: Any, args: Any, kwargs: Any) -> Any:
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        handle = top[0].register_forward_pre_hook(hook, with_kwargs=True)
        setattr(self.ctrl.layers_parent, self.ctrl.layers_attr, torch.nn.ModuleList(top))
        try:
            yield
        finally:
            setattr(self.ctrl.layers_parent, self.ctrl.layers_attr, full)
            handle.remove()


def _accepts(model: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params
