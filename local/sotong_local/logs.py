"""Readable output: the stack's own lines, and the functions' Powertools JSON logs and EMF
metrics shortened to one line each (`--log-format json` keeps them as they are)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

from sotong.masking import mask_text

_NOISE = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "sampling_rate",
    "exception",
    "exception_name",
    "stack_trace",
}


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def compact(line: str) -> str:
    """One Powertools log or EMF line -> one short readable line (other text unchanged)."""
    stripped = line.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return line
    try:
        data = json.loads(stripped)
    except ValueError:
        return line
    if not isinstance(data, dict):
        return line
    if "_aws" in data:
        names = [
            metric["Name"]
            for directive in data["_aws"].get("CloudWatchMetrics", [])
            for metric in directive.get("Metrics", [])
        ]
        values = " ".join(f"{name}={data.get(name)}" for name in names)
        return f"{_clock()} METRIC {data.get('service', '?')}: {values}"
    if "level" not in data or "message" not in data:
        return line
    level = str(data["level"])
    message = data["message"]
    if not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False, default=str)
    extras = " ".join(
        f"{key}={json.dumps(value, ensure_ascii=False, default=str)}"
        for key, value in data.items()
        if key not in _NOISE
    )
    where = f" ({data['location']})" if level in ("WARNING", "ERROR", "CRITICAL") else ""
    text = f"{_clock()} {level:<5} {data.get('service', '?')}: {message}{where}"
    if extras:
        text += f"  {extras}"
    if data.get("exception"):
        text += "\n" + "\n".join("    " + row for row in str(data["exception"]).splitlines())
    return text


class CompactStream:
    """A stdout stand-in that rewrites complete JSON log lines as they are written."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            while "\n" in self._pending:
                line, self._pending = self._pending.split("\n", 1)
                self._target.write(compact(line) + "\n")
            self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        component = record.name.removeprefix("sotong_local.").removeprefix("sotong_local")
        text = f"{_clock()} {record.levelname:<5} [{component or 'local'}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        # The stack's own lines are masked as the functions' are (a phone or an address in an
        # error, a pydantic error's input_value); request lines are masked where they are made.
        return mask_text(text)


def setup(*, quiet: bool, compact_output: bool) -> None:
    """Configure the `sotong_local` loggers and, unless `compact_output` is off, wrap stdout."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    if compact_output and not isinstance(sys.stdout, CompactStream):
        sys.stdout = CompactStream(sys.stdout)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("sotong_local")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False
