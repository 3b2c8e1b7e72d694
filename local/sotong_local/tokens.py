"""A local stand-in for the Cognito user pool: HS256 ID tokens signed with a key made per run.

`claims_for_authorizer` renders verified claims the way API Gateway's Cognito authorizer hands
them to a REST (v1) proxy integration: every value a string, `exp`/`iat` as
`Wed Nov 22 08:20:00 UTC 2023`, a single group as its bare name (several joined by commas).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

from sotong.staff import DEPARTMENT_GROUP, ORGANISATION_GROUP

ISSUER = "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_sotonglocal"
AUDIENCE = "sotong-local-client"
LIFETIME_S = 12 * 3600
_DATE_CLAIMS = ("exp", "iat")


class TokenError(Exception):
    """A token API Gateway would refuse; `message` is what it answers with (status 401)."""

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, signing_input: bytes) -> str:
        return _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())

    def issue(
        self,
        username: str,
        role: str,
        department: str | None = None,
        *,
        organisation: str | None = None,
        lifetime_s: int = LIFETIME_S,
        now: float | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A signed ID token for one staff member, and its claims."""
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong-local:{username}")),
            "cognito:groups": [role]
            + ([f"{DEPARTMENT_GROUP}{department}"] if department else [])
            + ([f"{ORGANISATION_GROUP}{organisation}"] if organisation else []),
            "iss": ISSUER,
            "cognito:username": username,
            "aud": AUDIENCE,
            "token_use": "id",
            "auth_time": issued,
            "iat": issued,
            "exp": issued + lifetime_s,
        }
        header = {"alg": "HS256", "typ": "JWT", "kid": "sotong-local"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing_input}.{self._sign(signing_input.encode('ascii'))}", claims

    def verify(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a token this issuer signed and that has not expired."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError()
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            raise TokenError() from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise TokenError()
        expected = self._sign(f"{parts[0]}.{parts[1]}".encode("ascii"))
        if not hmac.compare_digest(expected, parts[2]):
            raise TokenError()
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            raise TokenError()
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= (now if now is not None else time.time()):
            raise TokenError("The incoming token has expired")
        return claims


def bearer_token(header_value: str | None) -> str | None:
    """The token from an Authorization header: `Bearer <token>` (or the bare token, as Cognito
    authorizers also accept)."""
    if not header_value:
        return None
    value = header_value.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


def _cognito_date(epoch: int) -> str:
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))


def claims_for_authorizer(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway's Cognito authorizer passes them: every value a string."""
    out: dict[str, str] = {}
    for name, value in claims.items():
        if name in _DATE_CLAIMS and isinstance(value, int):
            out[name] = _cognito_date(value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out
