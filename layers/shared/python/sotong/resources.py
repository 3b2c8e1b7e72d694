"""What the system is made of, written once.

The CDK stack, the local stack and the tests all build from these definitions: tables with their
keys and indexes, queues with their dead-letter queues, functions with what each may touch, the
HTTP routes and the schedules. Functions find their resources through the environment variables
named here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from sotong.staff import HOSPITAL_ROLES, Role

DynamoAction = Literal[
    "GetItem",
    "BatchGetItem",
    "Query",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "ConditionCheckItem",
]
HASH_KEY_ENV = "SOTONG_HASH_KEY_SECRET"
"""ARN of the stack-generated HMAC key of the keyed digests (`sotong.keys` reads it), set on
every function with `hash_key`."""
SenderSecret = Literal["kakao_sender_key", "provider_credentials", "webhook_secret"]
"""The hospital config's secret references (`sender.<name>`, see `HospitalConfig.secret_refs`)."""
Auth = Literal["public", "staff"]
RUNTIME_ENVIRONMENT: Mapping[str, str] = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
"""Set on every function (the CDK stack, the local stack, `make bench`). Sotong uses no pydantic
plugin, and without this the first model pydantic builds reads the entry points of every
installed distribution to look for one: milliseconds of each cold start."""


@dataclass(frozen=True)
class Index:
    """A global secondary index of a table (string keys, all attributes projected)."""

    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class Table:
    """A DynamoDB table: its keys, indexes, TTL attribute and stream, and the environment
    variable that names it to the functions."""

    name: str
    env: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None
    stream: Literal["NEW_IMAGE"] | None = None


@dataclass(frozen=True)
class Queue:
    """An SQS queue with its dead-letter queue (after `max_receive_count` receives)."""

    name: str
    env: str
    visibility_timeout_s: int
    max_receive_count: int
    retention_days: int = 4
    dlq_retention_days: int = 14

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"

    @property
    def dlq_env(self) -> str:
        return self.env.replace("_QUEUE_URL", "_DLQ_URL")


@dataclass(frozen=True)
class QueueTrigger:
    """The SQS event source of a function (partial batch failures reported)."""

    queue: str
    batch_size: int = 10
    max_batching_window_s: int = 0
    concurrency_per_rate: float | None = None
    """Caps the event source's MaximumConcurrency at ceil(send rate x this), at least 2."""


@dataclass(frozen=True)
class StreamTrigger:
    """A table's DynamoDB stream, filtered to items whose `pk` starts with `key_prefix` (and
    `sk` with `sort_prefix`, when given; `also` adds more such (pk, sk) prefix pairs), on the
    `events` named."""

    table: str
    key_prefix: str
    sort_prefix: str | None = None
    also: tuple[tuple[str, str | None], ...] = ()
    events: tuple[Literal["INSERT", "MODIFY", "REMOVE"], ...] = ("INSERT", "MODIFY")
    batch_size: int = 100
    max_batching_window_s: int = 1
    retry_attempts: int = 10

    @property
    def items(self) -> tuple[tuple[str, str | None], ...]:
        return ((self.key_prefix, self.sort_prefix), *self.also)

    def keeps(self, event_name: str, pk: str, sk: str) -> bool:
        """The filter the event source mapping applies (the local stack applies it too)."""
        return event_name in self.events and any(
            pk.startswith(key) and (sort is None or sk.startswith(sort)) for key, sort in self.items
        )


@dataclass(frozen=True)
class Schedule:
    """An EventBridge Scheduler expression: `rate(5 minutes)` or `cron(0 8 * * ? *)`."""

    expression: str
    timezone: str = "Asia/Seoul"
    description: str = ""


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule on the default bus that invokes the function."""

    source: str
    detail_types: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Grant:
    """DynamoDB actions a function may take on a table, or (`index`) Query on one of its GSIs.

    IAM has no transaction actions: each action of a TransactWriteItems needs its own (Put ->
    PutItem, Update -> UpdateItem, Delete -> DeleteItem, ConditionCheck -> ConditionCheckItem),
    and TransactGetItems needs GetItem. `keys`, when given, become a `dynamodb:LeadingKeys`
    condition (ForAllValues:StringLike): the partition keys the function may touch, `*` for
    any rest (`CMP#*`), on every item of a batch or transaction. On an index Query the leading
    key is the index's partition key (`gsi3pk`), not the table's."""

    table: str
    actions: tuple[DynamoAction, ...]
    index: str | None = None
    keys: tuple[str, ...] | None = None
    why: str = ""
    """Why a far-reaching grant (a table-wide delete or batch write) is needed."""

    def __post_init__(self) -> None:
        if self.index is not None and self.actions != ("Query",):
            raise ValueError(f"an index grant ({self.index}) is Query only, not {self.actions}")
        if "Scan" in self.actions:
            raise ValueError("no function may Scan: every read is a key lookup or a Query")

    def allows(self, action: str, table: str, index: str | None, key: str) -> bool:
        return (
            table == self.table
            and index == self.index
            and action in self.actions
            and (self.keys is None or any(fnmatchcase(key, pattern) for pattern in self.keys))
        )


@dataclass(frozen=True)
class Function:
    """A Lambda function: its handler, limits, grants, triggers and the secrets it reads."""

    name: str
    handler: str
    description: str
    memory_mb: int = 512
    timeout_s: int = 15
    data: tuple[Grant, ...] = ()
    """Every DynamoDB permission the function has: one IAM statement per grant."""
    sends_to: tuple[str, ...] = ()
    reads_dlqs_of: tuple[str, ...] = ()
    trigger: QueueTrigger | None = None
    stream: StreamTrigger | None = None
    schedule: Schedule | None = None
    event_rule: EventRule | None = None
    secrets: tuple[SenderSecret, ...] = ()
    """The hospital secrets it reads (GetSecretValue on exactly those)."""
    hash_key: bool = False
    """Computes keyed digests (`sotong.keys`: recipient keys, tombstones, signed cursors): gets
    `SOTONG_HASH_KEY_SECRET` and may read that one stack-generated secret."""
    sends_email: bool = False
    uses_bedrock: bool = False
    """May call the Bedrock model the hospital config names (`complaints.bedrock_model_id`)."""

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables it reaches (it gets their environment variables)."""
        return tuple(dict.fromkeys(grant.table for grant in self.data))

    def allows(self, action: DynamoAction, table: str, index: str | None, key: str) -> bool:
        """Whether its grants allow `action` on `table` (or its `index`) for partition key
        `key` (the index's partition key for an index Query), as IAM decides it."""
        return any(grant.allows(action, table, index, key) for grant in self.data)

    @property
    def required_env(self) -> tuple[str, ...]:
        """The environment variables it cannot run without, as the CDK stack and the local
        stack set them: its tables', the queues it sends to or is triggered by, the DLQs it
        reads, and the hash key's when `hash_key`. (Both stacks also set the hospital id and
        Powertools' own variables, and, where the config has them, the SES configuration set
        and the Bedrock model: each has a default, so none is required.)"""
        names = [table(name).env for name in self.tables]
        names += [queue(name).env for name in self.sends_to]
        if self.trigger:
            names.append(queue(self.trigger.queue).env)
        names += [queue(name).dlq_env for name in self.reads_dlqs_of]
        if self.hash_key:
            names.append(HASH_KEY_ENV)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Route:
    """An HTTP route of the API, the function behind it and the staff roles that may call it."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    function: str
    auth: Auth
    roles: tuple[Role, ...] = ()
    """The staff roles that may call a staff route (none for a public one)."""


MAIN = Table(
    name="records",
    env="SOTONG_TABLE",
    partition_key="pk",
    sort_key="sk",
    indexes=(
        Index("gsi1", "gsi1pk", "gsi1sk"),
        Index("gsi2", "gsi2pk", "gsi2sk"),
        Index("gsi3", "gsi3pk", "gsi3sk"),
        Index("gsi4", "gsi4pk", "gsi4sk"),
    ),
    ttl_attribute="expires_at",
    stream="NEW_IMAGE",
)
TABLES: tuple[Table, ...] = (MAIN,)
"""Idempotency lives in the records table (conditional writes on business keys); there is no
separate idempotency table."""

NOTIFICATIONS = Queue(
    name="notifications",
    env="SOTONG_NOTIFICATIONS_QUEUE_URL",
    visibility_timeout_s=180,
    max_receive_count=6,
)
QUEUES: tuple[Queue, ...] = (NOTIFICATIONS,)

FUNCTIONS: tuple[Function, ...] = (
    Function(
        name="public_api",
        handler="public_api.handler",
        description="Public HTTP API: health, and what patients reach without an account",
        data=(
            # complaints with their contact pointers, the form's consent audit and the receipt
            # SMS they queue; the per-IP and per-code attempt counters; nothing of patients,
            # message records or opt-outs
            Grant(
                MAIN.name,
                ("GetItem", "PutItem", "UpdateItem"),
                keys=("CMP#*", "CONTACT#*", "CONSENT#*", "TXOUT#*", "LIMIT#*", "TRACKFAIL#*"),
            ),
            Grant(MAIN.name, ("Query",), index="gsi3", keys=("TRACK#*",)),
        ),
        hash_key=True,
    ),
    Function(
        name="staff_api",
        handler="staff_api.handler",
        description="Staff HTTP API behind the Cognito authorizer",
        data=(
            Grant(MAIN.name, ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem")),
            Grant(
                MAIN.name,
                ("DeleteItem",),
                keys=("SENDER#*",),
                why="closing a complaint forgets the sender's open-complaint pointer",
            ),
            Grant(MAIN.name, ("Query",), index="gsi1"),  # inboxes by department, per recipient
            Grant(MAIN.name, ("Query",), index="gsi3"),  # messages about a complaint
            Grant(MAIN.name, ("Query",), index="gsi4"),  # the all-departments inbox
        ),
        hash_key=True,
    ),
    Function(
        name="notification_sender",
        handler="notification_sender.handler",
        description="Renders, checks, sends and records message requests, in batches",
        timeout_s=60,
        data=(Grant(MAIN.name, ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem")),),
        trigger=QueueTrigger(
            queue=NOTIFICATIONS.name,
            batch_size=100,
            max_batching_window_s=2,
            concurrency_per_rate=0.05,
        ),
        secrets=("provider_credentials", "kakao_sender_key"),
        hash_key=True,
        sends_email=True,
    ),
    Function(
        name="provider_webhook",
        handler="provider_webhook.handler",
        description="Provider callbacks: delivery reports, inbound SMS/KakaoTalk, opt-outs",
        data=(
            # inbound messages (complaints, replies to a recall: the patient's conversation and
            # consents), delivery reports on message records, opt-outs, and what they queue
            Grant(
                MAIN.name,
                ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem"),
                keys=(
                    "CMP#*",
                    "CONTACT#*",
                    "SENDER#*",
                    "INBOUND#*",
                    "PAT#*",
                    "MSG#*",
                    "OPTOUT#*",
                    "ERASED#*",
                    "CONSENT#*",
                    "TXOUT#*",
                ),
            ),
            Grant(MAIN.name, ("Query",), index="gsi3", keys=("PHONE#*",)),  # patient by phone
        ),
        secrets=("webhook_secret",),
        hash_key=True,
    ),
    Function(
        name="email_events",
        handler="email_events.handler",
        description="SES delivery events (delivered, bounced, complained) onto message records",
        data=(
            Grant(
                MAIN.name,
                ("GetItem", "PutItem", "UpdateItem"),
                keys=("MSG#*", "OPTOUT#*", "CONSENT#*"),
            ),
        ),
        hash_key=True,
        event_rule=EventRule(
            "aws.ses",
            ("Email Delivered", "Email Bounced", "Email Complaint Received", "Email Rejected"),
            description="SES events of the hospital's configuration set",
        ),
    ),
    Function(
        name="sla_sweeper",
        handler="sla_sweeper.handler",
        description="Escalates complaints past their SLA: department head, then CS admin",
        timeout_s=60,
        data=(
            Grant(MAIN.name, ("GetItem", "PutItem", "UpdateItem")),
            Grant(MAIN.name, ("Query",), index="gsi2"),  # SLA# hour buckets
        ),
        schedule=Schedule("rate(5 minutes)", description="escalate overdue complaints"),
    ),
    Function(
        name="department_digest",
        handler="department_digest.handler",
        description="Sends each department its morning digest of open and due complaints",
        timeout_s=60,
        data=(
            # the day's marker with its outbox items, in one transaction (once per day)
            Grant(MAIN.name, ("PutItem",), keys=("DIGEST#*", "TXOUT#*")),
            Grant(MAIN.name, ("Query",), index="gsi1", keys=("INBOX#*",)),  # open, per department
        ),
        schedule=Schedule(
            "cron(30 8 * * ? *)", description="each department's digest of what is open and due"
        ),
    ),
    Function(
        name="recall_api",
        handler="recall_api.handler",
        description="Staff API for patients, treatments, touchpoints and conversations",
        data=(
            Grant(
                MAIN.name,
                (
                    "GetItem",
                    "BatchGetItem",
                    "Query",
                    "PutItem",
                    "UpdateItem",
                    "DeleteItem",
                    "BatchWriteItem",
                ),
                why="an erasure (DELETE /patients/{id}) deletes the patient's items, complaints, "
                "message records and pending requests wherever they are; an EMR import writes "
                "its rows 25 to a request",
            ),
            Grant(MAIN.name, ("Query",), index="gsi1"),  # segments by tag, per recipient
            Grant(MAIN.name, ("Query",), index="gsi2"),  # pending outbox items (erasure)
            Grant(MAIN.name, ("Query",), index="gsi3"),  # patients by phone, messages by ref
            Grant(MAIN.name, ("Query",), index="gsi4", keys=("REPLIES#*",)),  # replies waiting
        ),
        hash_key=True,
    ),
    Function(
        name="recall_dispatcher",
        handler="recall_dispatcher.handler",
        description="Enqueues due touchpoints; cancellation rules are checked at dispatch",
        timeout_s=120,
        data=(
            Grant(MAIN.name, ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem")),
            Grant(MAIN.name, ("DeleteItem",), keys=("LEASE",), why="releases its run's lease"),
            Grant(MAIN.name, ("Query",), index="gsi2"),  # DUE# hour buckets
        ),
        hash_key=True,
        schedule=Schedule("rate(1 minute)", description="send the touchpoints that are due"),
    ),
    Function(
        name="notification_release",
        handler="notification_release.handler",
        description="Puts held messages (quiet hours, not-before) back on the queue when due",
        timeout_s=60,
        data=(
            Grant(MAIN.name, ("GetItem", "PutItem"), keys=("WATERMARK",)),
            Grant(
                MAIN.name,
                ("BatchWriteItem",),
                keys=("TXOUT#*",),
                why="writes the released requests to the outbox, 25 to a request",
            ),
            Grant(MAIN.name, ("Query",), index="gsi2"),  # HELD# hour buckets
        ),
        schedule=Schedule("rate(5 minutes)", description="release held messages that are due"),
    ),
)

FUNCTIONS += (
    Function(
        name="outbox_relay",
        handler="outbox_relay.handler",
        description="Puts new outbox items (message requests) on the notification queue",
        timeout_s=60,
        data=(
            Grant(
                MAIN.name,
                ("BatchWriteItem",),
                keys=("TXOUT#*",),
                why="deletes the outbox items SQS took, 25 to a request",
            ),
        ),
        sends_to=(NOTIFICATIONS.name,),
        stream=StreamTrigger(table=MAIN.name, key_prefix="TXOUT#"),
    ),
    Function(
        name="complaint_reviewer",
        handler="complaint_reviewer.handler",
        description="Second opinion on new complaints and recall replies: may raise urgency "
        "and page the on-call contact",
        timeout_s=60,
        memory_mb=1024,
        data=(Grant(MAIN.name, ("GetItem", "Query", "PutItem", "UpdateItem")),),
        stream=StreamTrigger(
            table=MAIN.name,
            key_prefix="CMP#",
            sort_prefix="CMP",
            also=(("PAT#", "CONV#"),),
            events=("INSERT",),
            batch_size=20,
        ),
        hash_key=True,
        uses_bedrock=True,
    ),
    Function(
        name="outbox_sweeper",
        handler="outbox_sweeper.handler",
        description="Publishes outbox items the stream relay missed (the safety net)",
        timeout_s=60,
        data=(
            Grant(MAIN.name, ("GetItem",), keys=("TXOUT#*",)),
            Grant(
                MAIN.name,
                ("BatchWriteItem",),
                keys=("TXOUT#*",),
                why="deletes the outbox items SQS took, 25 to a request",
            ),
            Grant(MAIN.name, ("Query",), index="gsi2", keys=("TXOUT#*",)),  # pending shards
        ),
        sends_to=(NOTIFICATIONS.name,),
        schedule=Schedule("rate(1 minute)", description="publish outbox items left pending"),
    ),
    Function(
        name="campaign_runner",
        handler="campaign_runner.handler",
        description="Runs campaign jobs: pages through segments, writes their messages at the "
        "send rate",
        timeout_s=120,
        data=(
            Grant(MAIN.name, ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem")),
            Grant(MAIN.name, ("DeleteItem",), keys=("LEASE",), why="releases its run's lease"),
            Grant(MAIN.name, ("Query",), index="gsi1"),  # segments by tag
            Grant(MAIN.name, ("Query",), index="gsi2"),  # active campaigns
        ),
        hash_key=True,
        schedule=Schedule("rate(1 minute)", description="advance running campaigns"),
    ),
    Function(
        name="provider_balance",
        handler="provider_balance.handler",
        description="Reads the message provider's account balance for the low-balance alarm",
        memory_mb=256,
        timeout_s=30,
        # no table: it reads the provider's answer and puts a metric, nothing else
        secrets=("provider_credentials",),
        schedule=Schedule("rate(1 hour)", description="read the provider balance"),
    ),
)

# Integrated care plans (sotong.careplans): a case's items under CASE#, conferences under CONF#,
# pointers by the contact phone's key under CASECONTACT# (for an erasure, which recall_api runs).
CARE_KEYS = ("CASE#*", "CONF#*", "TXOUT#*")
FUNCTIONS += (
    Function(
        name="careplans_api",
        handler="careplans_api.handler",
        description="Staff and agency API for integrated care plans and case conferences",
        data=(
            # cases with their activities, reviews and audit; conferences; the messages they
            # cause; nothing of patients, complaints or message records
            Grant(MAIN.name, ("GetItem", "Query", "PutItem"), keys=CARE_KEYS),
            # a new case's pointer by its contact phone's key (what an erasure reads)
            Grant(MAIN.name, ("PutItem",), keys=("CASECONTACT#*",)),
            # an agency's activities, a department's open cases
            Grant(MAIN.name, ("Query",), index="gsi1", keys=("AGENCY#*", "CASEDEPT#*")),
            # every open case, the reviews due
            Grant(MAIN.name, ("Query",), index="gsi4", keys=("CASES", "REVIEWSDUE")),
        ),
    ),
    Function(
        name="careplans_schedule",
        handler="careplans_schedule.handler",
        description="Care plans: follow-up reviews falling due, reminders of activities due",
        timeout_s=60,
        data=(
            Grant(MAIN.name, ("GetItem", "Query", "PutItem"), keys=CARE_KEYS),
            Grant(MAIN.name, ("GetItem", "PutItem"), keys=("WATERMARK",)),
            # CAREREVIEW# and CAREREMIND# hour buckets
            Grant(MAIN.name, ("Query",), index="gsi2", keys=("CAREREVIEW#*", "CAREREMIND#*")),
        ),
        schedule=Schedule(
            "rate(15 minutes)", description="care-plan reviews due and activity reminders"
        ),
    ),
)


# Patient support programmes (sotong.programmes): sessions and sign-ups under PROG#, one-time
# codes under OTP#; the patient's own treatments and bookings read from PAT# (recall's port).
PROGRAMME_KEYS = ("PROG#*", "OTP#*", "LIMIT#*", "TXOUT#*")
FUNCTIONS += (
    Function(
        name="programmes_api",
        handler="programmes_api.handler",
        description="Support programmes: the public sign-up (code by SMS) and staff rosters",
        data=(
            # sign-ups with their seats and messages, codes, the code limiter; the patient's
            # own record and treatments (read only), for the matching by treatment schedule
            Grant(
                MAIN.name,
                ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem"),
                keys=PROGRAMME_KEYS,
            ),
            Grant(MAIN.name, ("GetItem", "Query"), keys=("PAT#*",)),
            # a patient by phone (recall's index), a phone's own sign-ups
            Grant(MAIN.name, ("Query",), index="gsi3", keys=("PHONE#*", "SIGNUPBY#*")),
        ),
        hash_key=True,
    ),
    Function(
        name="programme_notices",
        handler="programme_notices.handler",
        description="Programme reminders the day before and feedback questions the day after",
        timeout_s=60,
        data=(
            # the sent marks on sign-ups with their outbox items, in one transaction
            Grant(MAIN.name, ("Query", "UpdateItem", "PutItem"), keys=("PROG#*", "TXOUT#*")),
            Grant(MAIN.name, ("Query",), index="gsi2", keys=("SESSDAY#*",)),  # one day's sessions
        ),
        schedule=Schedule(
            "rate(30 minutes)", description="programme reminders and feedback questions"
        ),
    ),
)


# The care network (sotong.network): referrals under REFERRAL#, listed by partner and month
# (REFERRALS#), unanswered ones on the sparse REFESC# hour buckets, pointers by the guardian's
# phone key under REFGUARDIAN# (for an erasure, which recall_api runs); the directory is config.
REFERRAL_KEYS = ("REFERRAL#*", "TXOUT#*")
FUNCTIONS += (
    Function(
        name="network_api",
        handler="network_api.handler",
        description="Care network API: partners open now, referrals, the network report",
        data=(
            # referrals with the guardian's messages they cause, in one transaction; nothing of
            # patients, complaints or message records
            Grant(MAIN.name, ("GetItem", "PutItem"), keys=REFERRAL_KEYS),
            # a new referral's pointer by its guardian's phone key (what an erasure reads)
            Grant(MAIN.name, ("PutItem",), keys=("REFGUARDIAN#*",)),
            Grant(MAIN.name, ("Query",), index="gsi1", keys=("REFERRALS#*",)),  # per partner
            Grant(MAIN.name, ("Query",), index="gsi4", keys=("REFERRALS#*",)),  # per month
        ),
    ),
    Function(
        name="referral_sweeper",
        handler="referral_sweeper.handler",
        description="Pages the on-call contact for urgent referrals left unanswered",
        timeout_s=60,
        data=(
            Grant(MAIN.name, ("PutItem",), keys=REFERRAL_KEYS),  # the mark + the page
            Grant(MAIN.name, ("GetItem", "PutItem"), keys=("WATERMARK",)),
            Grant(MAIN.name, ("Query",), index="gsi2", keys=("REFESC#*",)),  # hour buckets
        ),
        schedule=Schedule("rate(5 minutes)", description="escalate unanswered referrals"),
    ),
)


def sender_concurrency(rate_per_second: float, trigger: QueueTrigger) -> int | None:
    """MaximumConcurrency for a queue trigger: enough senders for the rate, never a herd."""
    if trigger.concurrency_per_rate is None:
        return None
    return max(2, min(1000, math.ceil(rate_per_second * trigger.concurrency_per_rate)))


# Who may call each staff route (docs/roles.md says what each may then see there: department
# staff and reception only their department's complaints and patients).
ADMIN: tuple[Role, ...] = ("cs_admin",)
CLINICAL: tuple[Role, ...] = ("cs_admin", "department_staff")
REGISTRARS: tuple[Role, ...] = ("cs_admin", "department_staff", "reception")
HANDLERS: tuple[Role, ...] = REGISTRARS
ALL_STAFF: tuple[Role, ...] = HOSPITAL_ROLES
REFERRERS: tuple[Role, ...] = ("cs_admin", "department_staff", "partner")
"""the care network's referrals: the hospital's clinical staff and the partners (their own)"""

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "public_api", "public"),
    Route("POST", "/complaints", "public_api", "public"),
    Route("GET", "/track/{code}", "public_api", "public"),
    Route("POST", "/survey", "public_api", "public"),
    Route("GET", "/pages/{page}", "public_api", "public"),
    Route("GET", "/console", "public_api", "public"),
    Route("GET", "/console/{page}", "public_api", "public"),
    Route("GET", "/inbox", "staff_api", "staff", ALL_STAFF),
    Route("POST", "/staff/complaints", "staff_api", "staff", HANDLERS),
    Route("GET", "/complaints/{complaint_id}", "staff_api", "staff", ALL_STAFF),
    Route("POST", "/complaints/{complaint_id}/status", "staff_api", "staff", HANDLERS),
    Route("POST", "/complaints/{complaint_id}/assign", "staff_api", "staff", HANDLERS),
    Route("POST", "/complaints/{complaint_id}/classification", "staff_api", "staff", HANDLERS),
    Route("POST", "/complaints/{complaint_id}/replies", "staff_api", "staff", HANDLERS),
    Route("POST", "/complaints/{complaint_id}/resolve", "staff_api", "staff", HANDLERS),
    Route("POST", "/complaints/{complaint_id}/close", "staff_api", "staff", HANDLERS),
    Route("POST", "/complaints/{complaint_id}/reopen", "staff_api", "staff", HANDLERS),
    Route("GET", "/reports/complaints", "staff_api", "staff", ALL_STAFF),
    Route("GET", "/reports/recall", "staff_api", "staff", ("cs_admin", "department_staff", "qi")),
    Route("GET", "/reports/messages", "staff_api", "staff", ("cs_admin", "qi")),
    Route("GET", "/outbox", "staff_api", "staff", ADMIN),
    Route("GET", "/messages", "staff_api", "staff", HANDLERS),
    Route("GET", "/messages/{message_id}", "staff_api", "staff", ADMIN),
    Route("POST", "/patients", "recall_api", "staff", REGISTRARS),
    Route("GET", "/patients", "recall_api", "staff", REGISTRARS),
    Route("GET", "/patients/{patient_id}", "recall_api", "staff", REGISTRARS),
    Route("DELETE", "/patients/{patient_id}", "recall_api", "staff", ADMIN),
    Route("POST", "/patients/{patient_id}/treatments", "recall_api", "staff", CLINICAL),
    Route(
        "POST",
        "/patients/{patient_id}/treatments/{treatment_id}/date",
        "recall_api",
        "staff",
        CLINICAL,
    ),
    Route("POST", "/patients/{patient_id}/appointments", "recall_api", "staff", REGISTRARS),
    Route("GET", "/patients/{patient_id}/touchpoints", "recall_api", "staff", CLINICAL),
    Route(
        "POST",
        "/patients/{patient_id}/touchpoints/{touchpoint_id}/cancel",
        "recall_api",
        "staff",
        CLINICAL,
    ),
    Route("POST", "/patients/{patient_id}/pause", "recall_api", "staff", REGISTRARS),
    Route("GET", "/patients/{patient_id}/conversation", "recall_api", "staff", CLINICAL),
    Route("POST", "/patients/{patient_id}/conversation", "recall_api", "staff", CLINICAL),
    Route("POST", "/patients/{patient_id}/conversation/handled", "recall_api", "staff", CLINICAL),
    Route("GET", "/replies", "recall_api", "staff", CLINICAL),
    Route("POST", "/segments/count", "recall_api", "staff", CLINICAL),
    Route("POST", "/segments/list", "recall_api", "staff", CLINICAL),
    Route("POST", "/campaigns", "recall_api", "staff", ADMIN),
    Route("POST", "/campaigns/preview", "recall_api", "staff", CLINICAL),
    Route("GET", "/campaigns/{campaign_id}", "recall_api", "staff", CLINICAL),
    Route("POST", "/campaigns/{campaign_id}/cancel", "recall_api", "staff", ADMIN),
    Route("POST", "/imports/treatments", "recall_api", "staff", CLINICAL),
    Route("GET", "/network/open", "network_api", "public"),
    Route("GET", "/network/directory", "network_api", "public"),
    Route("GET", "/network/services", "network_api", "public"),
    Route("POST", "/referrals", "network_api", "staff", REFERRERS),
    Route("GET", "/referrals", "network_api", "staff", REFERRERS),
    Route("GET", "/referrals/{referral_id}", "network_api", "staff", REFERRERS),
    Route("POST", "/referrals/{referral_id}/status", "network_api", "staff", REFERRERS),
    Route("GET", "/referrals/{referral_id}/fhir", "network_api", "staff", REFERRERS),
    Route(
        "GET", "/reports/network", "network_api", "staff", ("cs_admin", "department_staff", "qi")
    ),
    Route("POST", "/webhooks/inbound", "provider_webhook", "public"),
    Route("POST", "/webhooks/reports", "provider_webhook", "public"),
)

HOSPITAL_CARE: tuple[Role, ...] = ("cs_admin", "department_staff")
"""who runs integrated care cases and conferences"""
ROUTES += (
    Route("POST", "/care/cases", "careplans_api", "staff", HOSPITAL_CARE),
    Route("GET", "/care/cases", "careplans_api", "staff", HOSPITAL_CARE),
    Route("GET", "/care/cases/{case_id}", "careplans_api", "staff", HOSPITAL_CARE),
    Route("GET", "/care/cases/{case_id}/fhir", "careplans_api", "staff", HOSPITAL_CARE),
    Route("POST", "/care/cases/{case_id}/activities", "careplans_api", "staff", HOSPITAL_CARE),
    Route(
        "POST",
        "/care/cases/{case_id}/activities/{activity_id}/status",
        "careplans_api",
        "staff",
        (*HOSPITAL_CARE, "agency"),
    ),
    Route(
        "POST",
        "/care/cases/{case_id}/reviews/{review_id}/done",
        "careplans_api",
        "staff",
        HOSPITAL_CARE,
    ),
    Route("GET", "/care/activities", "careplans_api", "staff", ("agency",)),
    Route("POST", "/care/conferences", "careplans_api", "staff", HOSPITAL_CARE),
    Route("GET", "/care/conferences/{conference_id}", "careplans_api", "staff", HOSPITAL_CARE),
    Route("GET", "/care/reviews", "careplans_api", "staff", HOSPITAL_CARE),
)


PROGRAMME_STAFF: tuple[Role, ...] = ("cs_admin", "department_staff")
"""who sees a programme's sign-ups (department staff: their department's programmes)"""
ROUTES += (
    Route("GET", "/programmes", "programmes_api", "public"),
    Route("POST", "/programmes/codes", "programmes_api", "public"),
    Route("POST", "/programmes/{programme_id}/offers", "programmes_api", "public"),
    Route("POST", "/programmes/{programme_id}/signups", "programmes_api", "public"),
    Route("POST", "/programmes/cancellations", "programmes_api", "public"),
    Route("GET", "/programmes/{programme_id}/roster", "programmes_api", "staff", PROGRAMME_STAFF),
    Route(
        "POST", "/programmes/{programme_id}/attendance", "programmes_api", "staff", PROGRAMME_STAFF
    ),
    Route("GET", "/programmes/{programme_id}/export", "programmes_api", "staff", PROGRAMME_STAFF),
)


def table(name: str) -> Table:
    return next(t for t in TABLES if t.name == name)


def queue(name: str) -> Queue:
    return next(q for q in QUEUES if q.name == name)


def function(name: str) -> Function:
    return next(f for f in FUNCTIONS if f.name == name)


def route(method: str, path: str) -> Route | None:
    """The route API Gateway matched; `path` is its resource path (`/patients/{patient_id}`)."""
    return next((r for r in ROUTES if r.method == method and r.path == path), None)


def routes_of(function_name: str) -> tuple[Route, ...]:
    return tuple(r for r in ROUTES if r.function == function_name)


class MissingEnvironment(RuntimeError):
    """A function started without environment variables its definition says it needs."""


def require_env(function_name: str, environ: Mapping[str, str] | None = None) -> None:
    """Fail fast, at a handler module's import (Lambda's init), when any variable of
    `Function.required_env` is unset or empty, naming every missing one."""
    environ = os.environ if environ is None else environ
    missing = [name for name in function(function_name).required_env if not environ.get(name)]
    if missing:
        raise MissingEnvironment(
            f"{function_name} needs the environment variable(s) {', '.join(missing)} "
            "(sotong.resources sets them in the CDK stack and the local stack)"
        )
