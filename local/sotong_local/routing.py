"""Matching a request path to an API Gateway resource from `sotong.resources.ROUTES`.

API Gateway picks the most specific resource: a literal segment beats `{param}`, which beats
`{proxy+}`. A path no resource matches, or a method the matched resource lacks, gets API Gateway's
`403 {"message": "Missing Authentication Token"}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from sotong.resources import Route


@dataclass(frozen=True)
class Match:
    route: Route
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class NoMatch:
    """No resource, or no such method on the matched resource (`allowed` lists what is)."""

    allowed: tuple[str, ...] = ()


def split(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def _match_template(
    template: str, segments: list[str]
) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """Specificity (one rank per segment: 2 literal, 1 param, 0 greedy) and the parameters."""
    parts = split(template)
    params: dict[str, str] = {}
    ranks: list[int] = []
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[index:]
            if not rest:
                return None
            params[part[1:-2]] = unquote("/".join(rest))
            ranks.append(0)
            return tuple(ranks), params
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = unquote(segments[index])
            ranks.append(1)
        elif part == segments[index]:
            ranks.append(2)
        else:
            return None
    if len(parts) != len(segments):
        return None
    return tuple(ranks), params


def match(routes: Iterable[Route], method: str, path: str) -> Match | NoMatch:
    segments = split(path)
    best: tuple[tuple[int, ...], str] | None = None
    candidates: dict[str, tuple[dict[str, str], list[Route]]] = {}
    for route in routes:
        found = _match_template(route.path, segments)
        if found is None:
            continue
        ranks, params = found
        entry = candidates.setdefault(route.path, (params, []))
        entry[1].append(route)
        if best is None or ranks > best[0]:
            best = (ranks, route.path)
    if best is None:
        return NoMatch()
    params, on_resource = candidates[best[1]]
    for route in on_resource:
        if route.method == method.upper():
            return Match(route, params)
    return NoMatch(tuple(sorted(r.method for r in on_resource)))
