"""`sotong outbox | schedule | token | sandbox | simulate`: ask the running local stack over its
HTTP API (`use_local_stack` serves `sotong replay-dlq` and `import-treatments` too).

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
        if args.shift_hours:
            print(
                "What it set off (stream, queues, their retries) runs with the same clock; "
                "see `sotong outbox`."
            )
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
    parser.add_argument(
        "--organisation", help="partner clinic or agency id (needed for partner and agency)"
    )
    parser.add_argument("--username", help="username (default: local-<role>[-<department>])")
    parser.add_argument("--json", action="store_true", help="print the token with its claims")
    args = parser.parse_args(argv)
    body = {
        "role": args.role,
        "department": args.department,
        "organisation": args.organisation,
        "username": args.username,
    }
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


def _show_sandbox(data: dict[str, Any]) -> None:
    armed = data.get("armed") or []
    if not armed:
        print("sandbox: no faults armed; every send is accepted.")
    for fault in armed:
        detail = {
            "reject": f" code {fault['code']}",
            "429": f" Retry-After {fault['retry_after_s']:g} s",
            "5xx": f" HTTP {fault['http_status']}",
        }.get(fault["mode"], "")
        print(f"sandbox: {fault['mode']}{detail}: {fault['left']} of {fault['count']} left")
    failed = data.get("failed") or {}
    if failed:
        print("failed so far: " + ", ".join(f"{m} {n}" for m, n in sorted(failed.items())))
    if data.get("provider") not in (None, "sandbox"):
        print(
            f"note: this hospital sends with {data['provider']}, not the sandbox", file=sys.stderr
        )


def sandbox(argv: Sequence[str]) -> int:
    from sotong.notify.providers.sandbox import FAULT_MODES

    parser = _parser(
        "sandbox",
        "Make the local sandbox provider fail on demand, answering as Solapi does, to watch "
        "retries, fallback, uncertain calls and the DLQ (docs/local-stack.md).",
    )
    parser.add_argument(
        "action", nargs="?", choices=("show", "fail", "clear"), default="show", help="default: show"
    )
    parser.add_argument("--mode", choices=FAULT_MODES, help="with fail: how the provider fails")
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        help="how many sends fail: provider requests (429, 5xx, unreachable, timeouts), or "
        "messages (reject, not-kakao) (default 1)",
    )
    parser.add_argument("--code", default="1060", help="reject: Solapi status code (1060)")
    parser.add_argument(
        "--retry-after", type=float, default=30.0, help="429: Retry-After seconds (30)"
    )
    parser.add_argument("--http-status", type=int, default=503, help="5xx: the status (503)")
    args = parser.parse_args(argv)
    if args.action == "fail":
        if not args.mode:
            parser.error("fail needs --mode (" + ", ".join(FAULT_MODES) + ")")
        body = {
            "mode": args.mode,
            "count": args.count,
            "code": args.code,
            "retry_after_s": args.retry_after,
            "http_status": args.http_status,
        }
        status, raw = _request(args.api, "POST", "/_local/sandbox", body)
    elif args.action == "clear":
        status, raw = _request(args.api, "DELETE", "/_local/sandbox")
    else:
        status, raw = _request(args.api, "GET", "/_local/sandbox")
    if status != 200:
        print(f"sandbox: {status} {_message(raw)}", file=sys.stderr)
        return 1
    _show_sandbox(json.loads(raw))
    return 0


def _post_signed(api: str, path: str, body: bytes) -> tuple[int, bytes]:
    """`body` signed with the stack's webhook key, as the provider signs, POSTed to `path`."""
    from sotong_local.simulate import signed

    status, raw = _request(api, "GET", "/_local/webhook")
    if status != 200:
        raise StackUnreachable(f"no webhook key from {api}: {status} {_message(raw)}")
    secret = json.loads(raw)["secret"]
    request = urllib.request.Request(  # noqa: S310 - the URL is the local stack's
        api.rstrip("/") + path, data=body, method="POST", headers=dict(signed(body, secret))
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise StackUnreachable(f"the local stack does not answer at {api} ({error})") from None


def _outbox_entry(api: str, message_id: str) -> dict[str, Any]:
    status, raw = _request(api, "GET", "/_local/outbox?limit=500")
    if status != 200:
        return {}
    return next((e for e in json.loads(raw) if e.get("message_id") == message_id), {})


def simulate(argv: Sequence[str]) -> int:
    from sotong_local import simulate as bodies

    parser = _parser(
        "simulate",
        "Play the message provider's webhooks on the local stack, signed as the provider signs "
        "them with the stack's webhook key: a patient's reply, a delivery report, an 080 opt-out.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    inbound = sub.add_parser("inbound", help="a patient's SMS (or KakaoTalk) to the hospital")
    inbound.add_argument("--from", dest="phone", required=True, help="the patient's number")
    inbound.add_argument("--text", required=True, help="what the patient wrote")
    inbound.add_argument("--kakao", action="store_true", help="a KakaoTalk message, not an SMS")
    report = sub.add_parser("report", help="the provider's delivery report for one message")
    report.add_argument("message_id", help="our message id (sotong outbox --json shows them)")
    report.add_argument(
        "--status",
        choices=tuple(bodies.REPORT_CODES),
        default="delivered",
        help="delivered (4000), failed (3041, or --code), fallback (the AlimTalk went as its "
        "SMS/LMS substitute), not-kakao (3104) (default delivered)",
    )
    report.add_argument("--code", help="the provider's status code (e.g. 3041, 3104)")
    optout = sub.add_parser("optout", help="an 080 free opt-out for a number")
    optout.add_argument("--phone", required=True, help="the number that opted out")
    care = sub.add_parser(
        "care-case", help="the article's integrated care case and its conference (care plans)"
    )
    for each in (inbound, report, optout, care):
        each.add_argument("--api", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kind == "care-case":
        from sotong_local import care_demo

        return care_demo.run(args.api)

    if args.kind == "inbound":
        status, raw = _request(args.api, "GET", "/_local/webhook")
        to = json.loads(raw).get("hospital_number") if status == 200 else None
        body = bodies.inbound_body(args.phone, args.text, to or "", kakao=args.kakao)
        path = bodies.INBOUND_PATH
    elif args.kind == "report":
        entry = _outbox_entry(args.api, args.message_id)
        try:
            data = bodies.report_data(
                args.message_id,
                status=args.status,
                code=args.code,
                channel=str(entry.get("channel") or "sms"),
                sms_type=str(entry.get("sms_type") or "SMS"),
                to_phone=entry.get("to"),
                template_code=entry.get("kakao_template_code"),
            )
        except ValueError as error:
            parser.error(str(error))
        body = bodies.envelope(data)
        path = bodies.REPORTS_PATH
    else:
        body = bodies.envelope(bodies.optout_data(args.phone))
        path = bodies.REPORTS_PATH
    status, raw = _post_signed(args.api, path, body)
    if status != 200:
        print(f"simulate {args.kind}: {path} answered {status} {_message(raw)}", file=sys.stderr)
        return 1
    answer = json.loads(raw)
    print(f"{path}: {json.dumps(answer, ensure_ascii=False)}")
    if args.kind == "optout":
        print(f"080 opt-out of {args.phone} recorded: SMS to it are suppressed from now on")
    elif args.kind == "report" and not answer.get("applied"):
        print(
            "no record moved: the message id is unknown, or its record is final already",
            file=sys.stderr,
        )
    return 0


def use_local_stack(command: str, api: str | None = None) -> dict[str, Any] | None:
    """Point this process at a running local stack's AWS (its moto), tables, queues and hash
    key, as its functions see them; returns what the stack said, or None when none answers."""
    url = api or os.environ.get(API_ENV, DEFAULT_API)
    try:
        status, raw = _request(url, "GET", "/_local/env")
    except StackUnreachable:
        return None
    if status != 200:
        return None
    data: dict[str, Any] = json.loads(raw)
    os.environ.update(data["env"])
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    print(
        f"{command}: using the local stack at {url} (AWS: {data['aws_endpoint']})",
        file=sys.stderr,
    )
    return data


COMMANDS = {
    "outbox": outbox,
    "schedule": schedule,
    "token": token,
    "sandbox": sandbox,
    "simulate": simulate,
}


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
