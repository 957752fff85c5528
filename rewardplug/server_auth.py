"""Bearer-token authentication for ``rewardplug serve`` (``--auth-token-env VAR``).

:func:`check_auth_token` vets a token before the server starts; :func:`bearer_refusal` checks a
request's headers against it in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

__all__ = ["bearer_refusal", "check_auth_token"]


def check_auth_token(token: str) -> str:
    """``token`` if it can be a bearer token (one word of printable ASCII); else ValueError."""
    if not token:
        raise ValueError("the token is empty")
    if any(c.isspace() for c in token):
        raise ValueError("the token contains whitespace; a bearer token is one word")
    if not (token.isascii() and token.isprintable()):
        raise ValueError("the token is not printable ASCII (it must fit in an HTTP header)")
    return token


def bearer_refusal(headers: Sequence[tuple[bytes, bytes]], token: bytes) -> str | None:
    """None when the ASGI ``headers`` carry ``Authorization: Bearer <token>``; else what is wrong
    with them (the 401's message)."""
    given = [value for name, value in headers if name.lower() == b"authorization"]
    expected = "this server needs 'Authorization: Bearer <token>' (the token is in the "
    expected += "environment variable named by its --auth-token-env)"
    if not given:
        return f"no Authorization header: {expected}"
    scheme, _, sent = given[0].strip().partition(b" ")
    if (
        len(given) != 1
        or scheme.lower() != b"bearer"
        or not hmac.compare_digest(sent.strip(), token)
    ):
        return f"wrong or malformed Authorization header: {expected}"
    return None
