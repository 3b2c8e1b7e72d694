"""The local stack: moto for AWS, the API Gateway, the schedules and the queue pollers, all built
from `sotong.resources`, in this process.

One stack per process: it sets the process environment (AWS endpoint, table names, queue URLs,
hospital config) before any function module is imported, and the functions keep what they read.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sotong import keys, resources
from sotong.masking import mask_url
from sotong.resources import RUNTIME_ENVIRONMENT, Function, Queue, Route, Table
from sotong_local import aws, events, schedules
from sotong_local.gateway import Gateway, GatewayServer, Reply
from sotong_local.lambdas import Handler, Runtime
from sotong_local.queues import QueuePoller
from sotong_local.simulate import SandboxReports
from sotong_local.streams import StreamPoller
from sotong_local.tokens import TokenIssuer

log = logging.getLogger("sotong_local.stack")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VISIBILITY_TIMEOUT_S = 5
PUBLIC_URL_ENV = "SOTONG_PUBLIC_URL"  # read by sotong.complaints.service for patient links


@dataclass
class Options:
    host: str = "127.0.0.1"
    api_port: int = 0
    aws_port: int = 0
    functions_dir: Path = REPO_ROOT / "functions"
    web_dir: Path = REPO_ROOT / "web"
    run_schedules: bool = True
    run_pollers: bool = True
    sqs_visibility_timeout_s: int | None = DEFAULT_VISIBILITY_TIMEOUT_S  # None: the queue's own
    enforce_timeouts: bool = True
    prefix: str | None = None  # resource name prefix; None: `sotong-<hospital_id>`, as in AWS


class LocalStack:
    """`LocalStack(path).start()`, or `start(path)`; then `.api_url`, `.aws_endpoint`, `.stop()`."""

    def __init__(
        self,
        hospital_path: str | os.PathLike[str],
        options: Options | None = None,
        *,
        functions: Iterable[Function] | None = None,
        routes: Iterable[Route] | None = None,
        tables: Iterable[Table] | None = None,
        queues: Iterable[Queue] | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.hospital_path = Path(hospital_path)
        self.options = options or Options()
        self.functions = tuple(resources.FUNCTIONS if functions is None else functions)
        self.routes = tuple(resources.ROUTES if routes is None else routes)
        self.tables = tuple(resources.TABLES if tables is None else tables)
        self.queue_defs = tuple(resources.QUEUES if queues is None else queues)
        self.handlers = dict(handlers or {})
        self.api_url = ""
        self.aws_endpoint = ""
        self.env: dict[str, str] = {}
        self.notes: list[str] = []
        self._saved_env: dict[str, str | None] = {}
        self._moto: Any = None
        self._server: GatewayServer | None = None
        self._pollers: list[QueuePoller] = []
        self._streams: list[StreamPoller] = []
        self._scheduler: schedules.Scheduler | None = None
        self._reports: SandboxReports | None = None
        self._sqs: Any = None
        self._stopped = threading.Event()
        self._saved_key: bytes | None = keys.key_in_use()

    # -- start / stop ------------------------------------------------------------------------

    def _set_env(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        self.env.update(values)

    def start(self) -> LocalStack:
        from sotong.complaints import rulebook
        from sotong.config import load_hospital_file

        opts = self.options
        self.config = load_hospital_file(self.hospital_path)  # a broken file stops us here
        rulebook.checked(self.config, str(self.hospital_path))
        self.prefix: str = opts.prefix or f"sotong-{self.config.hospital_id}"
        try:
            self._moto, self.aws_endpoint = aws.start_moto(opts.host, opts.aws_port)
            # Every boto3 client this process makes from now on talks to moto, never to AWS.
            self._set_env(aws.aws_environment(self.aws_endpoint))
            for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
                if name in os.environ:
                    self._saved_env.setdefault(name, os.environ.pop(name))
            self._set_env(
                {
                    "SOTONG_HOSPITAL_CONFIG": str(self.hospital_path.resolve()),
                    "SOTONG_HOSPITAL_ID": self.config.hospital_id,
                    "POWERTOOLS_TRACE_DISABLED": "true",
                    # What the CDK app gives every function (POWERTOOLS_SERVICE_NAME differs per
                    # function there; one process cannot, and the functions name their service).
                    "POWERTOOLS_METRICS_NAMESPACE": os.environ.get(
                        "POWERTOOLS_METRICS_NAMESPACE", "Sotong"
                    ),
                    "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"),
                    **RUNTIME_ENVIRONMENT,
                }
            )
            self._set_env(
                aws.create_resources(
                    self.aws_endpoint,
                    prefix=self.prefix,
                    tables=self.tables,
                    queues=self.queue_defs,
                )
            )
            self.notes += aws.create_hospital_resources(self.aws_endpoint, self.config)
            # The key of every keyed digest, as in AWS: a secret the functions name in their
            # environment and read from Secrets Manager (never a key set in the process).
            secret = aws.create_hash_key(self.aws_endpoint, self.config.hospital_id)
            self._set_env({keys.ENV: secret})
            self.notes.append(f"secret {secret}")
            self._saved_key = keys.key_in_use()
            keys.use_key(None)
            self._sqs = aws.client("sqs", self.aws_endpoint)

            # Only now may function modules be imported: they read the environment at import.
            self.runtime = Runtime(
                self.functions,
                functions_dir=opts.functions_dir,
                handlers=self.handlers,
                enforce_timeouts=opts.enforce_timeouts,
                name_prefix=self.prefix,
            )
            self.runtime.load()
            for route in self.routes:
                if route.function not in self.runtime.definitions:
                    log.warning(
                        "route %s %s names %s, which is not among the functions",
                        route.method,
                        route.path,
                        route.function,
                    )
            for name, problem in self.runtime.unavailable.items():
                log.warning("function %s is not available: %s", name, problem.reason)
                if problem.detail:
                    log.warning("%s", problem.detail.rstrip())

            self.gateway = Gateway(
                self.routes,
                self.runtime,
                issuer=TokenIssuer(),
                control=self,
                web_dir=opts.web_dir,
            )
            self._server = GatewayServer((opts.host, opts.api_port), self.gateway, self._on_request)
            self.api_url = self._server.url
            if not (os.environ.get(PUBLIC_URL_ENV) or self.config.public_url):
                # Links in local messages (tracking, survey) then lead to this stack.
                self._set_env({PUBLIC_URL_ENV: self.api_url})
            self._server.start()
            self._start_sandbox_reports()
            self._start_schedules()
            self._start_pollers()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_pollers(self) -> None:
        for function in self.functions:
            if function.trigger is None:
                continue
            definition = next(q for q in self.queue_defs if q.name == function.trigger.queue)
            poller = QueuePoller(
                function=function,
                trigger=function.trigger,
                queue_url=self.env[definition.env],
                runtime=self.runtime,
                sqs=aws.client("sqs", self.aws_endpoint),
                visibility_timeout_s=self.options.sqs_visibility_timeout_s,
                max_receive_count=definition.max_receive_count,
            )
            self._pollers.append(poller)
            if self.options.run_pollers and self.runtime.available(function.name):
                poller.start()
        for function in self.functions:
            if function.stream is None:
                continue
            table = next(t for t in self.tables if t.name == function.stream.table)
            stream = StreamPoller(
                function=function,
                trigger=function.stream,
                table_name=self.env[table.env],
                runtime=self.runtime,
                dynamodb=aws.client("dynamodb", self.aws_endpoint),
                streams=aws.client("dynamodbstreams", self.aws_endpoint),
            )
            self._streams.append(stream)
            if self.options.run_pollers and self.runtime.available(function.name):
                stream.start()

    def _start_sandbox_reports(self) -> None:
        """The sandbox's delivery reports (its `not-kakao` fault) go to this stack's webhook."""
        from sotong.notify.providers.sandbox import FAULTS

        def post(path: str, headers: list[tuple[str, str]], body: bytes) -> int:
            return self.gateway.handle("POST", path, headers, body).status

        self._reports = SandboxReports(post, lambda: self.webhook()["secret"])
        self._reports.start()
        FAULTS.reporter = self._reports

    def _start_schedules(self) -> None:
        now = datetime.now(UTC)
        jobs = []
        for function in self.functions:
            if function.schedule is None:
                continue
            expression = schedules.parse(
                function.schedule.expression, function.schedule.timezone, anchor=now
            )
            jobs.append(
                schedules.ScheduledJob(
                    function=function.name,
                    expression=expression,
                    timezone=function.schedule.timezone,
                    arn=events.schedule_arn(aws.physical_name(self.prefix, function.name)),
                    next_run=expression.next_after(now),
                )
            )
        self._scheduler = schedules.Scheduler(jobs, self._run_job)
        if self.options.run_schedules:
            self._scheduler.start()

    def stop(self) -> None:
        """Stop every thread and server; put back the environment this stack changed."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        for poller in self._pollers:
            poller.stop()
        for stream in self._streams:
            stream.stop()
        if self._scheduler:
            self._scheduler.stop(timeout=0)
        if self._reports:
            from sotong.notify.providers.sandbox import FAULTS

            FAULTS.reporter = None
            FAULTS.clear()
            self._reports.stop()
        if self._server:
            self._server.stop()
        for poller in self._pollers:
            poller.join(timeout=2.5)
        for stream in self._streams:
            stream.join(timeout=2.5)
        if self._scheduler:
            self._scheduler.stop(timeout=2.0)
        if self._moto is not None:
            self._moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        keys.use_key(self._saved_key)

    def __enter__(self) -> LocalStack:
        return self if self.api_url else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what runs -------------------------------------------------------------------------------

    def _on_request(self, method: str, target: str, reply: Reply, ms: float) -> None:
        via = f" {reply.function}" if reply.function else ""
        level = logging.WARNING if reply.status >= 500 else logging.INFO
        # The target's query values and tracking codes stay out (sotong.masking.mask_url).
        log.log(level, "%s %s → %d%s %.0f ms", method, mask_url(target), reply.status, via, ms)

    def _run_job(
        self, job: schedules.ScheduledJob, at: datetime, clock_offset_seconds: float
    ) -> tuple[str | None, Any]:
        event = events.scheduled_event(job.arn, at)
        invocation = self.runtime.invoke(
            job.function, event, clock_offset_seconds=clock_offset_seconds or None
        )
        if invocation.ok:
            log.info(
                "schedule %s ran in %.0f ms%s",
                job.function,
                invocation.duration_ms,
                f" (clock shifted {clock_offset_seconds:+.0f} s)" if clock_offset_seconds else "",
            )
        else:
            log.warning("schedule %s failed: %s", job.function, invocation.error)
        return invocation.error, invocation.value

    # -- the Control protocol (the /_local endpoints) ------------------------------------------

    @property
    def timezone(self) -> str:
        return self.config.timezone

    @property
    def departments(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.config.departments)

    def outbox(self, limit: int) -> list[dict[str, Any]]:
        from sotong.notify import outbox

        return outbox.recent(limit)

    def schedules(self) -> list[dict[str, Any]]:
        assert self._scheduler is not None
        out = []
        for job in self._scheduler.jobs.values():
            zone = ZoneInfo(job.timezone)
            out.append(
                {
                    "function": job.function,
                    "expression": job.expression.expression,
                    "timezone": job.timezone,
                    "schedule_arn": job.arn,
                    "running": self.options.run_schedules,
                    "available": self.runtime.available(job.function),
                    "next_run": job.next_run.isoformat(),
                    "next_run_local": job.next_run.astimezone(zone).isoformat(),
                    "last_run": job.last_run.isoformat() if job.last_run else None,
                    "last_error": job.last_error,
                    "runs": job.runs,
                }
            )
        return out

    def run_schedule(self, name: str, clock_offset_seconds: float) -> tuple[int, dict[str, Any]]:
        assert self._scheduler is not None
        job = self._scheduler.jobs.get(name)
        if job is None:
            known = ", ".join(self._scheduler.jobs) or "none"
            return 404, {"message": f"'{name}' has no schedule; scheduled functions: {known}"}
        if not self.runtime.available(name):
            return 503, {
                "function": name,
                "error": self.runtime.unavailable[name].reason,
                "message": f"{name} is not available in this stack",
            }
        at = datetime.now(UTC) + timedelta(seconds=clock_offset_seconds)
        error = self._scheduler.fire(job, at, clock_offset_seconds)
        return 200 if error is None else 502, {
            "function": name,
            "time": at.isoformat(),
            "clock_offset_seconds": clock_offset_seconds,
            "ok": error is None,
            "error": error,
            "result": job.last_result,
        }

    def sandbox(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The sandbox provider's fault modes: GET what is armed, POST one more, DELETE all."""
        from sotong.notify.providers.sandbox import FAULT_MODES, FAULTS, Fault

        if method == "DELETE":
            FAULTS.clear()
        elif method == "POST":
            allowed = {"mode", "count", "code", "retry_after_s", "http_status"}
            unknown = sorted(set(body) - allowed)
            if unknown:
                return 400, {"message": f"unknown fields {', '.join(unknown)}; known: {allowed}"}
            try:
                fault = Fault(
                    mode=body.get("mode"),  # type: ignore[arg-type]
                    count=int(body.get("count", 1)),
                    code=str(body.get("code", "1060")),
                    retry_after_s=float(body.get("retry_after_s", 30)),
                    http_status=int(body.get("http_status", 503)),
                )
                FAULTS.arm(fault)
            except (TypeError, ValueError) as error:
                return 400, {"message": str(error), "modes": list(FAULT_MODES)}
            log.info("sandbox: fault %s armed (count %d)", fault.mode, fault.count)
        return 200, {
            "provider": self.config.sender.provider,
            "modes": list(FAULT_MODES),
            **FAULTS.state(),
        }

    def webhook(self) -> dict[str, Any]:
        """How to sign a webhook for this stack (its key is a local placeholder secret)."""
        from sotong import secrets
        from sotong.notify.providers.solapi import SIGNATURE_HEADER, TIMESTAMP_HEADER

        ref = self.config.sender.webhook_secret
        return {
            "secret": secrets.resolve(ref) if ref else "",
            "secret_ref": ref.model_dump() if ref else None,
            "headers": {
                TIMESTAMP_HEADER: "<unix seconds>",
                SIGNATURE_HEADER: '<hex HMAC-SHA256(secret, "<timestamp>." + body)>',
            },
            "paths": {"inbound": "/webhooks/inbound", "reports": "/webhooks/reports"},
            "hospital_number": self.config.sender.sms_sender_number,
        }

    def environment(self) -> dict[str, Any]:
        """What a command needs to work on this stack's AWS as its functions do."""
        return {
            "hospital_id": self.config.hospital_id,
            "hospital_config": str(self.hospital_path.resolve()),
            "aws_endpoint": self.aws_endpoint,
            "env": dict(self.env),
        }

    def queues(self) -> list[dict[str, Any]]:
        out = []
        for queue in self.queue_defs:
            url, dlq_url = self.env[queue.env], self.env[queue.dlq_env]
            main, dlq = (
                aws.queue_attributes(self._sqs, url),
                aws.queue_attributes(self._sqs, dlq_url),
            )
            consumers = [
                f.name for f in self.functions if f.trigger and f.trigger.queue == queue.name
            ]
            out.append(
                {
                    "queue": queue.name,
                    "url": url,
                    "messages": int(main["ApproximateNumberOfMessages"]),
                    "in_flight": int(main["ApproximateNumberOfMessagesNotVisible"]),
                    "delayed": int(main.get("ApproximateNumberOfMessagesDelayed", 0)),
                    "max_receive_count": queue.max_receive_count,
                    "consumers": consumers,
                    "dlq": {
                        "url": dlq_url,
                        "messages": int(dlq["ApproximateNumberOfMessages"]),
                        "in_flight": int(dlq["ApproximateNumberOfMessagesNotVisible"]),
                    },
                }
            )
        return out


def start(hospital_path: str | os.PathLike[str], api_port: int = 0, **options: Any) -> LocalStack:
    """Start a local stack for one hospital file; `options` are `Options` fields."""
    return LocalStack(hospital_path, Options(api_port=api_port, **options)).start()
