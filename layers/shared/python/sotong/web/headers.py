"""Security headers on every answer: the API functions' (`secured` wraps `sotong.api.resolve`), the
local gateway's own, and (the same values, in `infra/constructs/api.py`) API Gateway's own
gateway responses.

- `Content-Security-Policy`: a JSON answer may load nothing (`default-src 'none'`, `sandbox`). A
  page (`text/html`) may run only its own inline scripts and styles, allowed by their SHA-256
  hashes computed from the page itself (no `'unsafe-inline'`), load `style.css` from its own
  origin, and `fetch` its own origin (the pages call `../complaints`, `../track/...`).
- `frame-ancestors 'none'` and `X-Frame-Options: DENY`: no page is framed (clickjacking).
- `X-Content-Type-Options: nosniff`; `Referrer-Policy: no-referrer` (a tracking page's URL
  carries the code: no other site sees it).
- `Strict-Transport-Security`: API Gateway serves HTTPS only; browsers ignore it over the local
  stack's plain HTTP.
- `Cache-Control: no-store` on everything personal: every answer but the pages and their style
  sheet, which are the same for every patient.
- The staff console (`/console/`, `sotong/web/console/`) has no inline script or style at all:
  `console_csp` allows only its own origin (`default-src 'self'`), plus, in AWS, the Cognito
  domain it exchanges the sign-in code with (`connect-src`). Its files are revalidated on every
  load (`no-cache` with an ETag), so a deploy never mixes old and new modules.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec

from pydantic import ValidationError

from sotong.masking import scrubbed

HSTS = "max-age=63072000; includeSubDomains"
NO_STORE = "no-store"
PAGE_CACHE = "public, max-age=300"
CONSOLE_CACHE = "no-cache"
PUBLIC_ROUTES = frozenset({"/pages/{page}"})
"""API routes whose answers are the same for everyone, so they may be cached (for 5 minutes)."""

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
GATEWAY_CSP = "sandbox"
"""API Gateway's own error answers: its header values are single-quoted literals that cannot hold
a quote, so `'none'` cannot be written there; `sandbox` (no quotes) stops the answer from running
or loading anything, and X-Frame-Options stops it being framed."""

COMMON: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": HSTS,
}

_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.I | re.S)


def _hash(text: str) -> str:
    # Browsers hash the element's text after the HTML parser's newline normalisation.
    digest = hashlib.sha256(text.replace("\r\n", "\n").replace("\r", "\n").encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@functools.lru_cache(maxsize=16)
def page_csp(html: str) -> str:
    """The CSP for one HTML page: its inline `<script>` and `<style>` blocks by hash."""
    scripts: list[str] = []
    styles: list[str] = []
    for tag, attributes, body in _INLINE.findall(html):
        if tag.lower() == "script" and re.search(r"\bsrc\s*=", attributes, re.I):
            continue
        target = scripts if tag.lower() == "script" else styles
        hashed = _hash(body)
        if hashed not in target:
            target.append(hashed)
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *scripts]),
            " ".join(["style-src 'self'", *styles]),
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def console_csp(connect: Iterable[str] = ()) -> str:
    """The console's CSP: its own files only, no inline code; `connect` adds origins it may
    `fetch` (the Cognito domain's token endpoint in AWS)."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            " ".join(["connect-src 'self'", *connect]),
            "object-src 'none'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def headers_for(content_type: str, body: str, route: str | None) -> dict[str, str]:
    """Every security header an answer of this content type (and, for HTML, body) carries."""
    kind = content_type.split(";")[0].strip().lower()
    headers = dict(COMMON)
    headers["Content-Security-Policy"] = page_csp(body) if kind == "text/html" else API_CSP
    public = route in PUBLIC_ROUTES and kind in ("text/html", "text/css")
    headers["Cache-Control"] = PAGE_CACHE if public else NO_STORE
    return headers


def _present(response: Mapping[str, Any]) -> dict[str, str]:
    """The answer's headers (single and multi-value), by lower-case name."""
    found: dict[str, str] = {}
    for name, value in (response.get("headers") or {}).items():
        found[name.lower()] = str(value)
    for name, values in (response.get("multiValueHeaders") or {}).items():
        if values:
            found.setdefault(name.lower(), str(next(iter(values))))
    return found


def _text(response: Mapping[str, Any]) -> str:
    body = response.get("body")
    if not isinstance(body, str):
        return ""
    if response.get("isBase64Encoded"):
        try:
            return base64.b64decode(body).decode("utf-8", errors="replace")
        except ValueError:
            return ""
    return body


def secure(response: dict[str, Any], route: str | None = None) -> dict[str, Any]:
    """Add the security headers to a proxy answer (`route`: its API Gateway resource path); a
    header the handler set itself is kept."""
    if not isinstance(response, dict):
        return response
    present = _present(response)
    content_type = present.get("content-type", "application/json")
    missing = {
        name: value
        for name, value in headers_for(content_type, _text(response), route).items()
        if name.lower() not in present
    }
    if not missing:
        return response
    multi = response.get("multiValueHeaders")
    if isinstance(multi, dict) and multi:
        for name, value in missing.items():
            multi[name] = [value]
    else:
        headers = response.get("headers")
        if not isinstance(headers, dict):
            headers = response["headers"] = {}
        headers.update(missing)
    return response


P = ParamSpec("P")


def secured(resolve: Callable[P, dict[str, Any]]) -> Callable[P, dict[str, Any]]:
    """`resolve(app, event, context)` whose every answer, 4xx and 5xx included, is `secure`d, and
    whose errors leave without the request's data in them (`sotong.masking.scrubbed`)."""

    @functools.wraps(resolve)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        event = args[1] if len(args) > 1 else kwargs.get("event")
        route = str(event.get("resource") or "") if isinstance(event, dict) else None
        try:
            answer = resolve(*args, **kwargs)
        except ValidationError as error:
            # A model the handler built from what came in (an inbound text, a contact) refused
            # it: the error's text repeats that input, and the runtime would log it whole.
            raise scrubbed(error) from None
        return secure(answer, route)

    return wrapper


def add_missing(headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """The local gateway's form: (name, value) pairs, the security headers added where absent
    (a function's answer has them already; the gateway's own answers, `/_local` and `/form`,
    get them here)."""
    present = {name.lower(): value for name, value in headers}
    content_type = present.get("content-type", "application/json")
    text = body.decode("utf-8", errors="replace") if "html" in content_type.lower() else ""
    return headers + [
        (name, value)
        for name, value in headers_for(content_type, text, None).items()
        if name.lower() not in present
    ]
