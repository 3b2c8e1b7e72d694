"""Keyed digests: the keys that stand for a phone number or an e-mail address, erasure tombstones
and signed cursors. HMAC-SHA256 with one key per hospital, kept in Secrets Manager (the secret
the environment variable names), so a digest cannot be reversed by hashing every 010 number.

The key never changes for the life of a stack: every stored key depends on it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

ENV = "SOTONG_HASH_KEY_SECRET"
MAX_AGE_S = 3600
_key: bytes | None = None


def use_key(key: bytes | None) -> None:
    """Set the key directly (tests and the local stack), or forget it (`None`) so the next
    digest reads the secret again."""
    global _key
    _key = key


def key_in_use() -> bytes | None:
    """The key set or read so far (None before the first digest): to put back after a local
    stack, which reads its own, stops."""
    return _key


def _secret_key() -> bytes:
    global _key
    if _key is None:
        name = os.environ.get(ENV)
        if not name:
            raise RuntimeError(f"{ENV} is not set: the function cannot key its digests")
        from aws_lambda_powertools.utilities import parameters

        raw = parameters.get_secret(name, max_age=MAX_AGE_S)
        value = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        if len(value) < 32:
            raise RuntimeError(f"the secret {ENV} names is shorter than 32 bytes")
        _key = value
    return _key


def digest(purpose: str, text: str, length: int = 32) -> str:
    """The keyed digest of `text` for one `purpose` (digests for different purposes differ)."""
    mac = hmac.new(_secret_key(), f"{purpose}\x00{text}".encode(), hashlib.sha256)
    return mac.hexdigest()[:length]


def recipient_key(hospital_id: str, address: str) -> str:
    """The key that stands for a phone (E.164) or e-mail address in stored keys and indexes: a
    keyed HMAC, so it cannot be reversed by hashing every 010 number."""
    return digest("recipient", f"{hospital_id}\x00{address.lower()}", 32)


def sign(payload: bytes) -> str:
    """`payload` with a signature, as URL-safe text (a cursor a client may hand back)."""
    tag = hmac.new(_secret_key(), b"signed\x00" + payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(tag + payload).decode("ascii").rstrip("=")


def unsign(token: str) -> bytes | None:
    """The payload of a token `sign` made, or None for anything else (edited, forged, garbled)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    tag, payload = raw[:16], raw[16:]
    expected = hmac.new(_secret_key(), b"signed\x00" + payload, hashlib.sha256).digest()[:16]
    return payload if len(raw) > 16 and hmac.compare_digest(tag, expected) else None
