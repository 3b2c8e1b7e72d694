"""Sign-ups, seats and one-time codes in the records table: the port the programmes desk uses
(`ProgrammeRepository`) and its DynamoDB adapter, the one place that knows the key layout. The
messages a write causes join the adapter's own transaction (`sotong.notify.txoutbox.actions`).

- `PROG#<programme>` / `SESS#<start>` a session's seats (`taken`, the confirmed sign-ups),
  created by the first sign-up; gsi2 `SESSDAY#<local day>` / `<start>#<programme>`, so the
  notices schedule reads the sessions of one day (tomorrow's reminders, yesterday's feedback),
  never a Scan: a day without sign-ups has no entry at all.
- `PROG#<programme>` / `SIGNUP#<start>#<sign-up id>` a sign-up (one per phone and session: the
  id is a keyed digest of both); gsi3 `SIGNUPBY#<recipient key>` / `<start>#<programme>`, a
  phone's own sign-ups (what is offered leaves them out; an erasure finds them by key).
- `OTP#<recipient key>` / `OTP` the phone's current one-time code: its keyed digest, valid until,
  attempts (TTL `expires_at`).
- `LIMIT#<name>` / `<window start>` attempts counted by `hit_rate_limit` (TTL `expires_at`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sotong import clock, store
from sotong.notify import txoutbox
from sotong.programmes.records import CodeChallenge, Seats, Signup

if TYPE_CHECKING:
    from sotong.notify.model import MessageRequest


class ProgrammeRepository(Protocol):
    """What the programmes desk stores and reads, in domain terms."""

    def seats(self, programme_id: str, starts: Iterable[str]) -> dict[str, Seats]: ...
    def signup(self, programme_id: str, starts_at: str, signup_id: str) -> Signup | None: ...
    def signups(
        self, programme_id: str, since: str | None = None, until: str | None = None
    ) -> list[Signup]: ...
    def signups_of(self, phone_key: str) -> list[tuple[str, str]]:
        """(programme id, start) of every sign-up this phone made, cancelled ones included."""
        ...

    def sessions_on(self, day: str) -> list[Seats]: ...
    def take_seat(
        self,
        signup: Signup,
        capacity: int,
        phone_key: str,
        day: str,
        messages: Sequence[MessageRequest],
    ) -> bool:
        """The sign-up, confirmed, with a seat of its session taken; False (nothing written)
        when the session is full or this phone signed up for it before."""
        ...

    def join_waiting(
        self, signup: Signup, phone_key: str, day: str, messages: Sequence[MessageRequest]
    ) -> bool:
        """The sign-up on the waiting list; False when this phone signed up before."""
        ...

    def cancel(
        self,
        before: Signup,
        after: Signup,
        promoted: tuple[Signup, Signup] | None,
        messages: Sequence[MessageRequest],
    ) -> bool:
        """A cancellation, the seat it frees taken at once by `promoted` (before, after) or
        given back; False when either was no longer as read."""
        ...

    def save_attendance(self, before: Signup, after: Signup) -> bool: ...
    def mark_sent(
        self, before: Signup, attribute: str, at: datetime, messages: Sequence[MessageRequest]
    ) -> bool:
        """`attribute` (reminded_at, feedback_at) set with its messages, once: False when set."""
        ...

    def put_code(
        self, phone_key: str, challenge: CodeChallenge, messages: Sequence[MessageRequest]
    ) -> None: ...
    def code(self, phone_key: str) -> CodeChallenge | None: ...
    def spend_attempt(self, phone_key: str, challenge: CodeChallenge, *, used: bool) -> bool:
        """One attempt counted on the code as read (and, `used`, the code spent); False when it
        changed meanwhile (another attempt, a new code)."""
        ...

    def hit_rate_limit(self, name: str, window_s: int, limit: int) -> bool: ...


# --- the key layout -------------------------------------------------------------------------------
def pk(programme_id: str) -> str:
    return f"PROG#{programme_id}"


def seats_sk(starts_at: str) -> str:
    return f"SESS#{starts_at}"


def signup_sk(starts_at: str, signup_id: str) -> str:
    return f"SIGNUP#{starts_at}#{signup_id}"


def code_key(phone_key: str) -> dict[str, str]:
    return {"pk": f"OTP#{phone_key}", "sk": "OTP"}


def day_index(day: str, signup_or_seats: Seats | Signup) -> dict[str, str]:
    return {
        "gsi2pk": f"SESSDAY#{day}",
        "gsi2sk": f"{signup_or_seats.starts_at}#{signup_or_seats.programme_id}",
    }


def signup_item(signup: Signup, phone_key: str) -> dict[str, Any]:
    return {
        "pk": pk(signup.programme_id),
        "sk": signup_sk(signup.starts_at, signup.id),
        **signup.to_item(),
        "gsi3pk": f"SIGNUPBY#{phone_key}",
        "gsi3sk": f"{signup.starts_at}#{signup.programme_id}",
    }


def _signup_key(signup: Signup) -> dict[str, str]:
    return {"pk": pk(signup.programme_id), "sk": signup_sk(signup.starts_at, signup.id)}


def _seats_key(programme_id: str, starts_at: str) -> dict[str, str]:
    return {"pk": pk(programme_id), "sk": seats_sk(starts_at)}


def _status_move(before: Signup, after: Signup, extra: Sequence[str]) -> dict[str, Any]:
    """The `Update` that moves a sign-up from `before` (its status the condition) to `after`."""
    sets = {"status": after.status}
    for name in extra:
        value = getattr(after, name)
        if value is not None:
            sets[name] = value
    names = {f"#{k}": k for k in sets}
    action = store.update_action(
        _signup_key(after),
        "SET " + ", ".join(f"#{k} = :{k}" for k in sets),
        "#status = :was",
        was=before.status,
        **sets,
    )
    action["Update"]["ExpressionAttributeNames"] = names
    return action


# --- the DynamoDB adapter -----------------------------------------------------------------------
class DynamoProgrammeRepository:
    """`ProgrammeRepository` on the records table (`sotong.store`'s client)."""

    def __init__(self, hospital_id: str) -> None:
        self.hospital_id = hospital_id

    def seats(self, programme_id: str, starts: Iterable[str]) -> dict[str, Seats]:
        wanted = sorted(set(starts))
        keys = [store.key(pk(programme_id), seats_sk(s)) for s in wanted]
        found = store.batch_get(keys, consistent=True) if keys else []
        return {str(i["starts_at"]): Seats.from_item(i) for i in found}

    def signup(self, programme_id: str, starts_at: str, signup_id: str) -> Signup | None:
        item = (
            store.dynamodb()
            .get_item(
                TableName=store.table_name(),
                Key=store.key(pk(programme_id), signup_sk(starts_at, signup_id)),
                ConsistentRead=True,
            )
            .get("Item")
        )
        return Signup.from_item(store.from_item(item)) if item else None

    def signups(
        self, programme_id: str, since: str | None = None, until: str | None = None
    ) -> list[Signup]:
        low = f"SIGNUP#{since or ''}"
        high = f"SIGNUP#{until}\uffff" if until else "SIGNUP#\uffff"
        items = store.query_pages(
            TableName=store.table_name(),
            KeyConditionExpression="pk = :p AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues=store.values(p=pk(programme_id), low=low, high=high),
            ConsistentRead=True,
        )
        return [Signup.from_item(i) for i in items]

    def signups_of(self, phone_key: str) -> list[tuple[str, str]]:
        items = store.query_pages(
            TableName=store.table_name(),
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :p",
            ExpressionAttributeValues=store.values(p=f"SIGNUPBY#{phone_key}"),
        )
        return [(str(i["programme_id"]), str(i["starts_at"])) for i in items]

    def sessions_on(self, day: str) -> list[Seats]:
        items = store.query_pages(
            TableName=store.table_name(),
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :p",
            ExpressionAttributeValues=store.values(p=f"SESSDAY#{day}"),
        )
        return [Seats.from_item(i) for i in items]

    def _seat_action(self, signup: Signup, day: str, change: int, capacity: int | None) -> Any:
        index = day_index(day, signup)
        condition = None
        values: dict[str, Any] = {
            "n": change,
            "p": signup.programme_id,
            "s": signup.starts_at,
            "g2": index["gsi2pk"],
            "g2s": index["gsi2sk"],
        }
        if capacity is not None:
            condition = "attribute_not_exists(taken) OR taken < :cap"
            values["cap"] = capacity
        return store.update_action(
            _seats_key(signup.programme_id, signup.starts_at),
            "ADD taken :n SET programme_id = :p, starts_at = :s, gsi2pk = :g2, gsi2sk = :g2s",
            condition,
            **values,
        )

    def _new_signup(self, signup: Signup, phone_key: str) -> dict[str, Any]:
        return store.put_action(signup_item(signup, phone_key), "attribute_not_exists(pk)")

    def take_seat(
        self,
        signup: Signup,
        capacity: int,
        phone_key: str,
        day: str,
        messages: Sequence[MessageRequest],
    ) -> bool:
        return store.transact(
            [
                self._seat_action(signup, day, 1, capacity),
                self._new_signup(signup, phone_key),
                *txoutbox.actions(self.hospital_id, messages),
            ]
        )

    def join_waiting(
        self, signup: Signup, phone_key: str, day: str, messages: Sequence[MessageRequest]
    ) -> bool:
        return store.transact(
            [
                self._seat_action(signup, day, 0, None),
                self._new_signup(signup, phone_key),
                *txoutbox.actions(self.hospital_id, messages),
            ]
        )

    def cancel(
        self,
        before: Signup,
        after: Signup,
        promoted: tuple[Signup, Signup] | None,
        messages: Sequence[MessageRequest],
    ) -> bool:
        actions = [_status_move(before, after, ("cancelled_at",))]
        if promoted is not None:
            actions.append(_status_move(promoted[0], promoted[1], ("promoted_at",)))
        elif before.is_confirmed:
            actions.append(
                store.update_action(
                    _seats_key(after.programme_id, after.starts_at),
                    "ADD taken :n",
                    "taken > :zero",
                    n=-1,
                    zero=0,
                )
            )
        return store.transact([*actions, *txoutbox.actions(self.hospital_id, messages)])

    def save_attendance(self, before: Signup, after: Signup) -> bool:
        return store.transact(
            [_status_move(before, after, ("attendance", "attendance_by", "attendance_at"))]
        )

    def mark_sent(
        self, before: Signup, attribute: str, at: datetime, messages: Sequence[MessageRequest]
    ) -> bool:
        mark = store.update_action(
            _signup_key(before),
            "SET #a = :at",
            "#status = :confirmed AND attribute_not_exists(#a)",
            at=clock.iso(at),
            confirmed="confirmed",
        )
        mark["Update"]["ExpressionAttributeNames"] = {"#a": attribute, "#status": "status"}
        return store.transact([mark, *txoutbox.actions(self.hospital_id, messages)])

    def put_code(
        self, phone_key: str, challenge: CodeChallenge, messages: Sequence[MessageRequest]
    ) -> None:
        expires = int(clock.parse(challenge.valid_until).timestamp()) + 3600
        item = {**code_key(phone_key), **challenge.to_item(), "expires_at": expires}
        store.transact([store.put_action(item), *txoutbox.actions(self.hospital_id, messages)])

    def code(self, phone_key: str) -> CodeChallenge | None:
        item = (
            store.dynamodb()
            .get_item(
                TableName=store.table_name(),
                Key=store.to_item(code_key(phone_key)),
                ConsistentRead=True,
            )
            .get("Item")
        )
        if not item:
            return None
        found = store.from_item(item)
        found.pop("expires_at", None)
        return CodeChallenge.from_item(found)

    def spend_attempt(self, phone_key: str, challenge: CodeChallenge, *, used: bool) -> bool:
        return store.conditional_write(
            "update_item",
            Key=store.to_item(code_key(phone_key)),
            UpdateExpression="SET attempts = :next, used = :used",
            ConditionExpression="code_hash = :hash AND attempts = :was AND used = :no",
            ExpressionAttributeValues=store.values(
                next=int(challenge.attempts) + 1,
                used=used,
                hash=challenge.code_hash,
                was=int(challenge.attempts),
                no=False,
            ),
        )

    def hit_rate_limit(self, name: str, window_s: int, limit: int) -> bool:
        now = int(clock.now().timestamp())
        window = now - now % window_s
        return not store.conditional_write(
            "update_item",
            Key=store.key(f"LIMIT#{name}", str(window)),
            UpdateExpression="ADD attempts :one SET expires_at = :exp",
            ConditionExpression="attribute_not_exists(attempts) OR attempts < :limit",
            ExpressionAttributeValues=store.values(one=1, exp=window + window_s * 2, limit=limit),
        )

    def erase_phone(self, phone_key: str) -> int:
        """Delete every sign-up this phone made (a confirmed one gives its seat back), its code
        and its code-limiter windows: a patient's erasure (`sotong.erasure`), found by key,
        never by a Scan."""
        items = list(
            store.query_pages(
                TableName=store.table_name(),
                IndexName="gsi3",
                KeyConditionExpression="gsi3pk = :p",
                ExpressionAttributeValues=store.values(p=f"SIGNUPBY#{phone_key}"),
            )
        )
        for item in items:
            signup = Signup.from_item(item)
            actions = [
                {
                    "Delete": {
                        "TableName": store.table_name(),
                        "Key": store.key(
                            pk(signup.programme_id), signup_sk(signup.starts_at, signup.id)
                        ),
                    }
                }
            ]
            if signup.is_confirmed:
                actions.append(
                    store.update_action(
                        _seats_key(signup.programme_id, signup.starts_at),
                        "ADD taken :n",
                        "taken > :zero",
                        n=-1,
                        zero=0,
                    )
                )
            if not store.transact(actions):  # the seat count already down: delete it alone
                store.transact(actions[:1])
        store.dynamodb().delete_item(
            TableName=store.table_name(), Key=store.to_item(code_key(phone_key))
        )
        # the phone's code-limiter windows (`LIMIT#progcode:<key>`): counts, but keyed by it
        windows = store.query_pages(
            TableName=store.table_name(),
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=store.values(p=f"LIMIT#progcode:{phone_key}"),
        )
        for window in list(windows):
            store.dynamodb().delete_item(
                TableName=store.table_name(),
                Key=store.key(str(window["pk"]), str(window["sk"])),
            )
        return len(items)
