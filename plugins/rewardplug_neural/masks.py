"""Counter-based dropout masks: reproducible per sample, whatever else is in the batch.

``torch.nn.functional.dropout`` draws from one global generator, so the mask a row gets depends on
its position in the batch and on everything computed before it. Here every row carries a 64-bit
key (derived from the seed, the sample's content and the draw index) and every element is kept or
dropped by hashing (row key, dropout site, element coordinates). A sample therefore gets the same
K draws whether it is scored alone, in another batch, with other padding, or with its K copies
batched or looped. The hash is one 32-bit multiply of two pre-mixed words, which is cheaper than
``torch.bernoulli`` on CPU.

Element coordinates are taken over the trailing dimensions with a fixed radix, so right padding
(longer sequences in the batch) does not move a real token's coordinates.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

__all__ = ["dropout_by_key", "keep_mask", "mix64", "row_keys", "sample_key"]

_M64 = 1 << 64
_RADIX_BITS = 15  # trailing dims up to 32768 keep padding-independent coordinates


def _signed(c: int) -> int:
    """A 64-bit unsigned constant as the signed int64 torch stores."""
    c %= _M64
    return c - _M64 if c >= 1 << 63 else c


_C1 = _signed(0xBF58476D1CE4E5B9)
_C2 = _signed(0x94D049BB133111EB)
_GOLDEN = _signed(0x9E3779B97F4A7C15)
_C32 = 0x9E3779B1 - (1 << 32)  # odd 32-bit multiplier (golden ratio), as a signed int32


def _mix_int(z: int) -> int:
    """splitmix64 finalizer on a Python int (for keys computed on the host)."""
    z %= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % _M64
    return _signed(z ^ (z >> 31))


def sample_key(*parts: str) -> int:
    """A stable 63-bit key for a sample's content (independent of process and platform)."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return int.from_bytes(h.digest(), "little") >> 1


def row_keys(keys: list[int], draws: list[int], seed: int) -> list[int]:
    """Per-row mask keys for rows ``(keys[i], draws[i])`` under ``seed``."""
    base = _mix_int(seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019)
    return [
        _mix_int(_mix_int(k ^ base) + (d + 1) * 0x9E3779B97F4A7C15)
        for k, d in zip(keys, draws, strict=True)
    ]


def mix64(z: Any) -> Any:
    """splitmix64 finalizer on an int64 tensor (wrapping arithmetic, logical shifts)."""

    def srl(t: Any, k: int) -> Any:
        return (t >> k) & ((1 << (64 - k)) - 1)

    z = (z ^ srl(z, 30)) * _C1
    z = (z ^ srl(z, 27)) * _C2
    return z ^ srl(z, 31)


_ELEMENT_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CACHE_SIZE = 64


def _element_hash(shape: tuple[int, ...], device: Any) -> Any:
    """Hashed coordinates of every element of a tensor of trailing ``shape`` (cached)."""
    import torch

    key = (shape, str(device))
    hit = _ELEMENT_CACHE.get(key)
    if hit is not None:
        _ELEMENT_CACHE.move_to_end(key)
        return hit
    if len(shape) * _RADIX_BITS < 63 and all(d < (1 << _RADIX_BITS) for d in shape):
        idx = torch.zeros((), dtype=torch.int64, device=device)
        for d in shape:
            idx = idx.unsqueeze(-1) * (1 << _RADIX_BITS)
            idx = idx + torch.arange(d, dtype=torch.int64, device=device)
    else:  # huge dims: flat index (still deterministic for a given shape)
        n = 1
        for d in shape:
            n *= d
        idx = torch.arange(n, dtype=torch.int64, device=device).view(shape)
    value = _high32(mix64(idx + 1))
    _ELEMENT_CACHE[key] = value
    if len(_ELEMENT_CACHE) > _CACHE_SIZE:
        _ELEMENT_CACHE.popitem(last=False)
    return value


def _high32(z: Any) -> Any:
    """The high 32 bits of int64 values as int32 (arithmetic shift keeps them in range)."""
    import torch

    return (z >> 32).to(torch.int32)


def dropout_by_key(
    x: Any, rate: float, keys: Any, site: int, rescale: bool = True, inplace: bool = False
) -> Any:
    """Inverted dropout of ``x`` (rows first) with masks fixed by ``keys`` (int64, one per row).

    Element ``e`` of row ``r`` is kept iff ``(h(e) ^ h(r, site)) * C`` (32-bit, wrapping) is at
    least ``rate * 2**32`` above the int32 minimum (so dropped elements are multiplied by 0:
    non-finite inputs stay non-finite); ``h`` are splitmix64 hashes cut to 32 bits. The
    work per element is one xor, one multiply and one compare on int32 (cheaper than
    ``torch.bernoulli``); kept elements are scaled by ``1 / (1 - rate)`` as in ``nn.Dropout``
    (``rescale=False`` leaves that to the caller, e.g. after a matmul on a smaller tensor).
    ``inplace=True`` overwrites ``x`` (for temporaries the caller owns).
    """
    import torch

    if rate <= 0.0:
        return x
    if rate >= 1.0:
        return torch.zeros_like(x)
    if keys.shape[0] != x.shape[0]:
        raise RuntimeError(f"dropout keys for {keys.shape[0]} rows, tensor has {x.shape[0]} rows")
    keep = keep_mask(tuple(x.shape[1:]), rate, keys, site, x.device)
    out = x.mul_(keep) if inplace else x.mul(keep)
    return out.mul_(1.0 / (1.0 - rate)) if rescale else out


def keep_mask(shape: tuple[int, ...], rate: float, keys: Any, site: int, device: Any) -> Any:
    """The int32 0/1 keep mask of :func:`dropout_by_key` for rows ``keys`` (int64, one per row)
    and trailing ``shape``: ``(len(keys), *shape)``; ``0 < rate < 1``."""
    import torch

    site_keys = _high32(mix64(keys ^ _signed((site + 1) * _GOLDEN)))
    elements = _element_hash(shape, device)
    z = torch.bitwise_xor(elements.unsqueeze(0), site_keys.view(-1, *([1] * len(shape))))
    z.mul_(_C32)  # int32 multiply wraps: the high bits mix all the low ones
    threshold = round(rate * 2**32) - 2**31  # > int32 min for any rate > 0
    # keep = z >= threshold as an int32 0/1 made in place (clamp to [threshold - 1, threshold],
    # then subtract threshold - 1: no overflow, no new tensor). Multiplying by it is about 1.4x
    # faster on CPU than by a bool mask and 6x faster than masked_fill, with the same values
    # (a kept element is multiplied by exactly 1).
    return z.clamp_(threshold - 1, threshold).sub_(threshold - 1)
