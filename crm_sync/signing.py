"""Request signatures, both ways: `Callcenter-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
where each `v1` is HMAC-SHA256 of `"<t>.<raw body>"` under one active secret.

The timestamp inside the signed text is what makes a replay detectable: the receiver refuses
a `t` outside its tolerance, and a changed `t` breaks the HMAC. Plain functions; the secret
values never leave this module in a message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from pydantic import SecretStr

HEADER = "Callcenter-Signature"


class SignatureError(ValueError):
    """The request's signature is missing, malformed, forged or too old."""


def _secret(value: SecretStr | str) -> bytes:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return raw.encode()


def digest(secret: SecretStr | str, timestamp: int, body: bytes) -> str:
    return hmac.new(_secret(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[SecretStr | str], timestamp: int) -> str:
    """The header value: one `v1=` per active secret."""
    if not secrets:
        raise ValueError("no secret to sign with: set crm.webhook_secrets")
    parts = [f"t={timestamp}"] + [f"v1={digest(s, timestamp, body)}" for s in secrets]
    return ",".join(parts)


def parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed signature part {part.strip()!r} (want name=value)")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("the signature's t= is not unix seconds") from None
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("the signature needs t= and at least one v1=")
    return timestamp, signatures


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[SecretStr | str],
    now: float,
    tolerance: float,
) -> int:
    """Check a received signature; returns its timestamp or raises `SignatureError`."""
    if not secrets:
        raise SignatureError("no inbound secret is configured (crm.inbound_secrets)")
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    timestamp, signatures = parse(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"signature timestamp is {now - timestamp:+.0f} s from now, outside the "
            f"{tolerance:.0f} s window (a replay, or a clock that needs setting)"
        )
    expected = [digest(s, timestamp, body) for s in secrets]
    if any(hmac.compare_digest(e, g) for e in expected for g in signatures):
        return timestamp
    raise SignatureError("signature does not match (wrong secret or changed body)")
