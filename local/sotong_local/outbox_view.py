"""The sandbox outbox as a person reads it: one block per message, oldest first."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sotong import clock


def _when(value: Any, zone: ZoneInfo) -> str:
    if not isinstance(value, str):
        return str(value or "?")
    try:
        at = clock.parse(value)
    except ValueError:
        return value
    if at.tzinfo is None:
        return value
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def render(entries: list[dict[str, Any]], timezone: str = "Asia/Seoul") -> str:
    """`entries` as `outbox.recent()` returns them (newest first); printed oldest first."""
    if not entries:
        return "The outbox is empty: nothing has been sent yet.\n"
    zone = ZoneInfo(timezone)
    blocks = []
    for entry in reversed(entries):
        # The message record's words: its channel and status (as /messages shows them); the
        # carrier's SMS/LMS and a fallback channel come after.
        head = (
            f"{_when(entry.get('sent_at'), zone)}  {entry.get('channel', '?')} → "
            f"{entry.get('to', '?')}  [{entry.get('status', '?')}]"
        )
        extras = [
            f"{name}: {entry[name]}"
            for name in (
                "sms_type",
                "delivered_channel",
                "fallback",
                "purpose",
                "template_id",
                "message_id",
            )
            if entry.get(name)
        ]
        lines = [head]
        if extras:
            lines.append("  " + "  ".join(extras))
        if entry.get("subject"):
            lines.append(f"  Subject: {entry['subject']}")
        text = str(entry.get("text") or "")
        lines += ["  │ " + line for line in text.splitlines()] or ["  │"]
        blocks.append("\n".join(lines))
    count = len(entries)
    return "\n\n".join(blocks) + f"\n\n({count} message{'s' if count != 1 else ''})\n"
