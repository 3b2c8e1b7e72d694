"""The provider's send rate, shared by every concurrent sender.

Time is cut into windows of `WINDOW_S` seconds; `RATE#<provider>` / `<window number>` counts the
sends reserved in a window, at most `rate x WINDOW_S`. A sender reads the next windows in one
batched, eventually consistent read and writes only to a window that showed room, with a
condition that the count stays within the cap: a full window costs no write, a race costs one
refused write, and the cap holds however many senders there are. Reservations reach ahead up to
a horizon, so senders queue up on later windows instead of all hammering the current one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sotong import clock, store

WINDOW_S = 5
MAX_WINDOWS = 100


@dataclass(frozen=True)
class Slot:
    """Sends reserved in one rate window: `count` of them, from `starts_at` on."""

    starts_at: float
    """epoch seconds: the window's start; send at or after it"""
    count: int


@dataclass(frozen=True)
class Reservation:
    """The send slots reserved for a sender, and when to ask again for what did not fit."""

    slots: tuple[Slot, ...]
    retry_in_s: float
    """when nothing (or not all) fitted: seconds until asking again is worth it"""

    @property
    def count(self) -> int:
        return sum(s.count for s in self.slots)


def capacity(per_second: float) -> int:
    return max(1, int(per_second * WINDOW_S))


def _pk(provider: str) -> str:
    return f"RATE#{provider}"


def reserve(provider: str, wanted: int, per_second: float, *, horizon_s: float) -> Reservation:
    """Reserve up to `wanted` sends in the windows from now to `horizon_s` ahead."""
    if wanted <= 0:
        return Reservation((), 0.0)
    cap = capacity(per_second)
    now = clock.now().timestamp()
    first = int(now // WINDOW_S)
    count = min(MAX_WINDOWS, max(1, int(horizon_s // WINDOW_S) + 1))
    windows = list(range(first, first + count))
    keys = [store.key(_pk(provider), str(w)) for w in windows]
    taken = {int(i["sk"]): int(i.get("sent", 0)) for i in store.batch_get(keys)}
    slots: list[Slot] = []
    need = wanted
    for window in windows:
        room = cap - taken.get(window, 0)
        for _ in range(2):  # a refused write means another sender took room: re-read once
            if room <= 0:
                break
            take = min(room, need)
            if _add(provider, window, take, cap):
                slots.append(Slot(float(window * WINDOW_S), take))
                need -= take
                break
            room = cap - _read(provider, window)
        if need == 0:
            break
    retry_in = 0.0 if need == 0 else max(1.0, (first + count) * WINDOW_S - now)
    return Reservation(tuple(slots), retry_in)


def _add(provider: str, window: int, take: int, cap: int) -> bool:
    return store.conditional_write(
        "update_item",
        Key=store.key(_pk(provider), str(window)),
        UpdateExpression="ADD sent :n SET expires_at = :exp",
        ConditionExpression="attribute_not_exists(sent) OR sent <= :most",
        ExpressionAttributeValues=store.values(
            n=take, exp=(window + 2) * WINDOW_S + 600, most=cap - take
        ),
    )


def _read(provider: str, window: int) -> int:
    item = (
        store.dynamodb()
        .get_item(
            TableName=store.table_name(),
            Key=store.key(_pk(provider), str(window)),
            ConsistentRead=True,
        )
        .get("Item")
    )
    return int(store.from_item(item).get("sent", 0)) if item else 0
