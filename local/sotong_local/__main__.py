"""`python -m sotong_local --hospital hospitals/demo.yaml`: run the whole system on this machine."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sotong_local.stack import DEFAULT_VISIBILITY_TIMEOUT_S, REPO_ROOT, LocalStack, Options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sotong_local",
        description="Run Sotong locally: API, schedules and queue consumers, with AWS played by an "
        "embedded moto server. All data lives in memory and is gone when it stops.",
    )
    parser.add_argument(
        "--hospital",
        default=str(REPO_ROOT / "hospitals" / "demo.yaml"),
        help="hospital config file (default: hospitals/demo.yaml)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="API port (0: a free port)")
    parser.add_argument("--aws-port", type=int, default=0, help="moto port (default: a free port)")
    parser.add_argument(
        "--functions-dir", type=Path, default=REPO_ROOT / "functions", help="Lambda handler files"
    )
    parser.add_argument(
        "--sqs-visibility-timeout",
        type=int,
        default=DEFAULT_VISIBILITY_TIMEOUT_S,
        metavar="SECONDS",
        help="visibility timeout the pollers receive with, so failed messages come back quickly "
        f"(default {DEFAULT_VISIBILITY_TIMEOUT_S}; -1: the queue's own, as in AWS)",
    )
    parser.add_argument(
        "--no-schedules", action="store_true", help="do not fire schedules (run-now still works)"
    )
    parser.add_argument(
        "--no-pollers", action="store_true", help="leave queued messages on their queues"
    )
    parser.add_argument(
        "--ignore-timeouts",
        action="store_true",
        help="keep answers of invocations that ran over the function's timeout (for debuggers)",
    )
    parser.add_argument(
        "--log-format",
        choices=("compact", "json"),
        default="compact",
        help="functions' log lines: one short line each (default) or Powertools' JSON",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the URLs and problems")
    return parser


CLI = ".venv/bin/sotong"  # what `make` installs; not on the PATH unless the venv is active


def banner(stack: LocalStack, *, quiet: bool) -> str:
    config = stack.config
    api = stack.api_url
    env_hint = "" if api == "http://127.0.0.1:8000" else f"SOTONG_LOCAL_API={api} "
    if quiet:
        return (
            f"Sotong local stack for {config.hospital_id} on {api} (AWS: {stack.aws_endpoint}). "
            "Data lives in memory only. Ctrl-C stops it."
        )
    lines = [
        f"Sotong local stack: {config.name} ({config.hospital_id}) from {stack.hospital_path}",
        "",
        f"  API            {api}",
        f"  Staff console  {api}/console/   (sign in as any demo user of each role)",
        f"  Health         {api}/health",
        f"  Outbox         {api}/_local/outbox?format=text   or: {env_hint}{CLI} outbox",
        f"  Staff token    TOKEN=$({env_hint}{CLI} token --role cs_admin)",
        f'                 then: curl -H "Authorization: Bearer $TOKEN" {api}/outbox',
        f"                 department staff: {env_hint}{CLI} token --role department_staff "
        f"--department {config.departments[0].id}  (their inbox: {api}/inbox)",
        f"  Patient reply  {env_hint}{CLI} simulate inbound --from 010-5555-0101 "
        "--text '예약 시간을 바꾸고 싶어요'  (signed as the provider signs; also: simulate report "
        "<message id>, simulate optout --phone <number>; docs/local-stack.md)",
        f"  Sandbox faults {env_hint}{CLI} sandbox fail --mode 429 --count 1 --retry-after 1  "
        "(modes: reject, 429, 5xx, unreachable, timeout-before, timeout-after, not-kakao; "
        f"undo: {env_hint}{CLI} sandbox clear)",
        f"  Queues         {api}/_local/queues",
        f"  Local index    {api}/_local",
        f"  AWS (moto)     {stack.aws_endpoint}   e.g. aws --endpoint-url {stack.aws_endpoint} "
        f"dynamodb scan --table-name {stack.env.get('SOTONG_TABLE', '...')}",
    ]
    if stack.options.web_dir.is_dir():
        lines.append(f"  Web form       {api}/form/")
    for job in stack.schedules():
        state = "" if job["running"] else " (not firing: --no-schedules)"
        lines.append(
            f"  Schedule       {job['function']}: {job['expression']} {job['timezone']}, next "
            f"{job['next_run_local'][11:19]}{state}; now: {env_hint}{CLI} schedule "
            f"{job['function']}"
        )
    for function in stack.functions:
        if function.trigger:
            lines.append(
                f"  Consumer       {function.trigger.queue} → {function.name} "
                f"(batch {function.trigger.batch_size})"
            )
        if function.stream:
            lines.append(
                f"  Stream         {function.stream.table} "
                f"({', '.join(k + '*' for k, _ in function.stream.items)}) → {function.name}"
            )
    problems = [f"{n} ({u.reason})" for n, u in stack.runtime.unavailable.items()]
    ready = [name for name in stack.runtime.definitions if stack.runtime.available(name)]
    lines.append(f"  Functions      {', '.join(ready) or 'none'}")
    if problems:
        lines.append(f"  NOT AVAILABLE  {'; '.join(problems)}")
    if stack.options.host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            f"  WARNING        listening on {stack.options.host}: anyone who reaches this port "
            "can mint staff tokens at /_local/token"
        )
    lines += [
        "",
        "All data lives in memory (moto) and is lost when the stack stops. Ctrl-C stops it.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    hospital = Path(args.hospital)
    if not hospital.is_file():
        print(f"no hospital file at {hospital}", file=sys.stderr)
        return 2

    # Before anything imports a function: logging set-up, and Powertools told it is local.
    from sotong_local import logs

    logs.setup(quiet=args.quiet, compact_output=args.log_format == "compact")
    if args.quiet:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    if args.log_format == "compact":
        warnings.filterwarnings("ignore", message="No application metrics to publish")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: stop at once
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    visibility = None if args.sqs_visibility_timeout < 0 else args.sqs_visibility_timeout
    options = Options(
        host=args.host,
        api_port=args.port,
        aws_port=args.aws_port,
        functions_dir=args.functions_dir,
        run_schedules=not args.no_schedules,
        run_pollers=not args.no_pollers,
        sqs_visibility_timeout_s=visibility,
        enforce_timeouts=not args.ignore_timeouts,
    )
    stack = LocalStack(hospital, options)
    try:
        stack.start()
    except OSError as error:
        if "in use" in str(error) or getattr(error, "errno", None) == 98:
            print(
                f"port {args.port} is taken: stop what uses it or pass --port 0 (a free port)",
                file=sys.stderr,
            )
            return 2
        raise
    except Exception as error:
        from sotong.config import ConfigError

        if isinstance(error, ConfigError):
            print(error.render(), file=sys.stderr)
            return 2
        raise

    print(banner(stack, quiet=args.quiet), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if not args.quiet:
            print("\nStopping the local stack (its data goes with it)...", flush=True)
        stack.stop()
    if not args.quiet:
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
