"""The MC-dropout forward passes: one deterministic pass, then K stochastic ones, batched.

For a batch of B inputs the engine runs

1. one eval-mode pass (the ``value``), capturing the hidden states entering layer ``n - N`` when
   ``mc_layers: N`` is set;
2. B x K stochastic rows (the K copies of each input, ``repeat_interleave``-d) in chunks of at
   most ``rows_per_forward`` rows, each row with its own mask key. With ``mc_layers: N`` the lower
   layers are skipped: the layer stack is temporarily cut to its top N layers and the captured
   hidden states are fed into the first of them, so only the top N layers and the head run K times;
   in that first layer every linear map whose input is still the same for all K copies (the
   query, key and value projections) runs once per input (see :func:`_shared`).

``readout(outputs, batch)`` turns model outputs into a ``(rows, D)`` tensor (a logit column, or
pooled embeddings). On a CUDA out-of-memory error the chunk is halved and retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rewardplug_neural.attention import repeated
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

    def __init__(
        self, model: Any, controller: MCController, readout: Callable[[Any, dict[str, Any]], Any]
    ):
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
            # the captured hidden states are gathered per chunk (row r is input r // k), not
            # copied K-fold up front: that copy is 50 MB for a CPU batch of 32 x 8 x 128 x 384
            hidden = cache.get("hidden")
            all_keys = row_keys(
                [x for x in keys for _ in range(k)], list(range(k)) * len(keys), seed
            )
            key_t = torch.tensor(all_keys, dtype=torch.int64, device=batch["input_ids"].device)
            min_depth = self.ctrl.n_layers - n_top if cut else -1
            first = self.ctrl.layers[self.ctrl.n_layers - n_top]  # the first sampling layer
            outs: list[Any] = []
            start = 0
            while start < rows:
                stop = min(rows, start + per)
                chunk = {name: t[start:stop] for name, t in rep.items()}
                # Fed the cached hidden states, the first top layer sees K equal copies of each
                # input (in the full model, embedding dropout has already made them differ).
                aligned = start % k == 0 and (stop - start) % k == 0
                copies = k if hidden is not None and aligned else 1
                try:
                    with self.ctrl.sampling(key_t[start:stop], min_depth), _shared(first, copies):
                        if hidden is not None:
                            inputs = torch.arange(start, stop, device=hidden.device) // k
                            with self._top_only(n_top, hidden.index_select(0, inputs)):
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


@contextlib.contextmanager
def _shared(layer: Any, copies: int) -> Iterator[None]:
    """While a chunk of ``copies``-fold repeated rows runs, every linear map of ``layer`` (the
    first sampling layer) whose input rows are still identical copies is computed once per input.

    The K copies of an input enter the first sampling layer as the same hidden states and only
    diverge at its first dropout site, so its query, key and value projections (a quarter of a
    layer's matrix work) are the same K times over, and so are its attention scores and their
    softmax, up to the attention dropout. Each linear map checks its actual input (one
    comparison pass, far cheaper than the product), and the attention its queries and keys; each
    falls back to all rows when the copies differ, so nothing depends on where a model puts its
    dropout.
    """
    import torch

    if copies <= 1:
        yield
        return
    linears = [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]

    def wrap(forward: Callable[..., Any]) -> Callable[..., Any]:
        def shared_forward(x: Any, *args: Any, **kwargs: Any) -> Any:
            if args or kwargs or not torch.is_tensor(x) or x.dim() < 2 or x.shape[0] % copies:
                return forward(x, *args, **kwargs)  # (e.g. an adapter's extra arguments)
            if not repeated(x, copies):
                return forward(x)
            y = forward(x[::copies])
            return y.unsqueeze(1).expand(-1, copies, *y.shape[1:]).flatten(0, 1)

        return shared_forward

    # A module may already carry an instance-level forward (accelerate's device hooks do):
    # wrap that one, and put it back afterwards.
    saved = [(m, m.__dict__.get("forward")) for m in linears]
    for m in linears:
        m.forward = wrap(m.forward)  # type: ignore[method-assign]  # per instance, as accelerate
    # the layer's attention computes one score matrix and softmax per input while its queries
    # and keys are still copies (read by attention.eager_attention, which checks them too)
    modules = list(layer.modules())
    for m in modules:
        m._rp_copies = copies
    try:
        yield
    finally:
        for m in modules:
            del m._rp_copies
        for m, previous in saved:
            if previous is None:
                del m.forward  # back to the class's forward
            else:
                m.forward = previous  # type: ignore[method-assign]


def _accepts(model: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params
