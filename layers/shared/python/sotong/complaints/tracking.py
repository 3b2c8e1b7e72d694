"""Patients checking progress with a tracking code and the last four digits of their phone: the
lock that stops guessing the four digits, and why it never stops the patient.

What is counted: **failed factors** (a wrong last-4, or a code that names no complaint) per
*normalised* code (`model.tracking_code`: one spelling per code). A successful lookup counts
nothing, so whoever knows a code cannot use it up.

The lock: `FAILURES` failures of one code within one `WINDOW_S` window lock the code for
`LOCK_S` seconds. While it is locked:

- a network address (a keyed digest of it) that failed on this code in that window, or during
  the lock, is refused at once (429 with `Retry-After`) and its guess is not checked;
- an address that has not failed on this code is checked: the right last-4 is answered (200),
  a wrong one is refused like the rest (429) and that address joins the refused ones.

Why a correct lookup during the lock does not help a guesser: every guess that is checked either
succeeds (the guesser already had the answer) or costs its address, and a refused address learns
nothing. Checked guesses on a code are capped at `FAILURES` per window plus one per distinct
address, and the per-address limit (30 a minute across all codes) bounds each address besides;
10,000 possible last-4s need thousands of addresses for one code. Refusing every lookup during the
lock instead would let anyone who knows a code lock its patient out with `FAILURES` requests per
`LOCK_S`; answering a checked wrong guess with anything other than the same 429 would turn the
lock into an oracle. The patient who mistyped on the same phone waits out the lock; the answer
says how long (`Retry-After`, and minutes in the page's text).

Items (records table, removed by TTL): `TRACKFAIL#<code>` / `W#<window start>` counts one
window's failures and the addresses that failed; `TRACKFAIL#<code>` / `LOCK` holds the lock's end
and the refused addresses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sotong import clock, keys, store

FAILURES = 5
WINDOW_S = 15 * 60
LOCK_S = 15 * 60


@dataclass(frozen=True)
class Lock:
    """A tracking code's lock: until when, and the addresses (digests) it refuses meanwhile."""

    until: int
    """epoch seconds; 0: not locked"""
    refused: frozenset[str]

    def seconds_left(self, now: int) -> int:
        return max(0, self.until - now)


def client_key(address: str) -> str:
    """A network address as the limiter keeps it: a keyed digest (an address is personal data)."""
    return keys.digest("track-client", address, 24)


def _pk(code: str) -> str:
    return f"TRACKFAIL#{code}"


def _now() -> int:
    return int(clock.now().timestamp())


def lock_of(code: str) -> Lock:
    """The code's lock as it stands (consistent read)."""
    item = (
        store.dynamodb()
        .get_item(
            TableName=store.table_name(), Key=store.key(_pk(code), "LOCK"), ConsistentRead=True
        )
        .get("Item")
    )
    if not item:
        return Lock(0, frozenset())
    return Lock(int(item["until"]["N"]), frozenset(item.get("refused", {}).get("SS", [])))


def refused(lock: Lock, client: str, now: int | None = None) -> int:
    """Seconds `client` must wait before its guess on a locked code is checked; 0: check it."""
    left = lock.seconds_left(_now() if now is None else now)
    return left if left and client in lock.refused else 0


def record_failure(code: str, client: str) -> int:
    """Count one failed factor on `code` from `client`; the seconds the code is now locked for
    that client (0: not locked, answer "not found")."""
    now = _now()
    window = now - now % WINDOW_S
    client_set = {"SS": [client]}
    answer = store.dynamodb().update_item(
        TableName=store.table_name(),
        Key=store.key(_pk(code), f"W#{window}"),
        UpdateExpression="ADD failures :one, clients :c SET expires_at = :exp",
        ExpressionAttributeValues={
            ":one": {"N": "1"},
            ":c": client_set,
            ":exp": {"N": str(window + WINDOW_S + LOCK_S)},
        },
        ReturnValues="ALL_NEW",
    )["Attributes"]
    failures = int(answer["failures"]["N"])
    lock = lock_of(code)
    if lock.seconds_left(now):
        _refuse(code, client_set)
        return lock.seconds_left(now)
    if failures < FAILURES:
        return 0
    until = now + LOCK_S
    item: dict[str, Any] = {
        "pk": {"S": _pk(code)},
        "sk": {"S": "LOCK"},
        "until": {"N": str(until)},
        "refused": {"SS": sorted(set(answer["clients"]["SS"]) | {client})},
        "expires_at": {"N": str(until + WINDOW_S)},
    }
    store.dynamodb().put_item(TableName=store.table_name(), Item=item)
    return LOCK_S


def _refuse(code: str, client_set: dict[str, Any]) -> None:
    store.dynamodb().update_item(
        TableName=store.table_name(),
        Key=store.key(_pk(code), "LOCK"),
        UpdateExpression="ADD refused :c",
        ExpressionAttributeValues={":c": client_set},
    )


def wait_text(seconds: int) -> str:
    """What the patient reads: how many minutes to wait (rounded up, at least 1)."""
    minutes = max(1, math.ceil(seconds / 60))
    return f"조회 시도가 너무 많습니다. {minutes}분 후에 다시 시도해 주세요."
