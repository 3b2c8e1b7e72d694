"""`sotong outbox | schedule | token`: ask the running local stack over its HTTP API.

The stack is found at `--api`, else `$SOTONG_LOCAL_API`, else http://127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from sotong.staff import ROLES

DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "SOTONG_LOCAL_API"


class StackUnreachable(Exception):
    pass


def _request(api: str, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the local stack's
        api.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise StackUnreachable(
            f"the local stack does not answer at {api} ({reason}).\n"
            "Start it with `make run` (or set --api / $SOTONG_LOCAL_API to where it runs)."
        ) from None


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"sotong {prog}", description=description)
    parser.add_argument(
        "--api",
        default=os.environ.get(API_ENV, DEFAULT_API),
        help=f"the local stack's URL (default: ${API_ENV} or {DEFAULT_API})",
    )
    return parser


def _message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)
    return str(data)


def outbox(argv: Sequence[str]) -> int:
    parser = _parser("outbox", "Show what the sandbox provider sent, as patients would see it.")
    parser.add_argument("--limit", type=int, default=20, help="how many of the newest (default 20)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON list")
    args = parser.parse_args(argv)
    query = f"?limit={args.limit}" + ("" if args.json else "&format=text")
    status, raw = _request(args.api, "GET", f"/_local/outbox{query}")
    if status != 200:
        print(f"outbox: {status} {_message(raw)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(json.loads(raw), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(raw.decode())
    return 0


def schedule(argv: Sequence[str]) -> int:
    parser = _parser("schedule", "Run a scheduled function of the local stack now.")
    parser.add_argument("function", nargs="?", help="e.g. notification_release (omit to list)")
    parser.add_argument(
        "--shift-hours",
        type=float,
        default=0.0,
        help="run as if the clock were this many hours later (e.g. 11 to pass quiet hours)",
    )
    args = parser.parse_args(argv)
    if not args.function:
        status, raw = _request(args.api, "GET", "/_local/schedules")
        if status != 200:
            print(f"schedule: {status} {_message(raw)}", file=sys.stderr)
            return 1
        for job in json.loads(raw):
            print(
                f"{job['function']:<28} {job['expression']:<22} {job['timezone']:<12} "
                f"next {job['next_run_local']}  runs {job['runs']}"
                + (f"  last error: {job['last_error']}" if job["last_error"] else "")
            )
        return 0
    body = {"clock_offset_seconds": args.shift_hours * 3600}
    status, raw = _request(args.api, "POST", f"/_local/schedules/{args.function}/run", body)
    try:
        result = json.loads(raw)
    except ValueError:
        result = {"message": raw.decode(errors="replace")}
    if status == 200:
        shift = f" with the clock {args.shift_hours:+g} h" if args.shift_hours else ""
        print(f"{args.function} ran{shift}.")
        if result.get("result") is not None:
            print(json.dumps(result["result"], ensure_ascii=False, indent=2, default=str))
        return 0
    print(
        f"{args.function}: {result.get('error') or result.get('message') or status}",
        file=sys.stderr,
    )
    return 1


def token(argv: Sequence[str]) -> int:
    parser = _parser("token", "Print a staff sign-in token for the local stack.")
    parser.add_argument(
        "--role", choices=ROLES, default="cs_admin", help="staff role (docs/roles.md)"
    )
    parser.add_argument(
        "--department", help="department id (needed for department_staff and reception)"
    )
    parser.add_argument("--username", help="username (default: local-<role>[-<department>])")
    parser.add_argument("--json", action="store_true", help="print the token with its claims")
    args = parser.parse_args(argv)
    body = {"role": args.role, "department": args.department, "username": args.username}
    status, raw = _request(args.api, "POST", "/_local/token", body)
    if status != 200:
        print(f"token: {_message(raw)}", file=sys.stderr)
        return 1
    data = json.loads(raw)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(data["token"])
        if sys.stderr.isatty():
            print(
                f"# {data['claims']['cognito:username']} ({args.role}); use it as\n"
                '#   curl -H "Authorization: Bearer $TOKEN" ...   '
                "(TOKEN=$(sotong token ...))",
                file=sys.stderr,
            )
    return 0


COMMANDS = {"outbox": outbox, "schedule": schedule, "token": token}


def main(name: str, args: Sequence[str]) -> int:
    command = COMMANDS.get(name)
    if command is None:
        print(f"unknown local command '{name}'; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    rest = list(args)
    if rest[:1] == ["--"]:  # `sotong token -- --role cs_admin` gets past the outer parser
        rest = rest[1:]
    try:
        return command(rest)
    except StackUnreachable as error:
        print(str(error), file=sys.stderr)
        return 2
