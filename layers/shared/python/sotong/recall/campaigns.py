"""Campaigns: one marketing template sent to a segment, through the notification pipeline.

- Only patients with marketing consent are queued; the others are counted as skipped, as are
  paused patients (staff paused their follow-ups). Every other rule stays the pipeline's: `(광고)`,
  sender name and free opt-out number, opt-outs, the 21:00–08:00 hold without night consent, no
  AlimTalk for ads.
- Never twice: the campaign id comes from the caller's `Idempotency-Key`, and each message's
  idempotency key is `campaign:<id>:<patient>`, so a retried request (or one that resumes a
  creation that crashed half-way) queues the same messages again and the sender drops the repeats.
- Enqueued synchronously, in SQS batches of 10 sent from a few threads, up to `MAX_TARGETED`
  patients; a larger segment is refused (400) and must be narrowed.
- Item: `CAMPAIGN#<id>` / `CAMPAIGN`. Results come from the message records referring to it
  (gsi3 `REF#campaign#<id>`): reading them grows with the campaign's messages.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sotong import clock, store
from sotong.config.schema import HospitalConfig, Template
from sotong.errors import BadRequest, Conflict, NotFound
from sotong.notify.model import DONE, MessageRequest
from sotong.recall import repository as repo
from sotong.recall.segments import Member, Segment, evaluate, known_tag, marketing_consent
from sotong.recall.service import patient_recipient, patient_variables

Enqueue = Callable[[list[MessageRequest]], int]
MAX_TARGETED = 5_000
CHUNK = 100
"""requests per enqueue call (10 SQS batches); chunks go out from `WORKERS` threads"""
WORKERS = 8
FILLABLE = ("hospital", "name", "callback", "opt_out")


class CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, examples=["2026 겨울 스케일링 안내"])
    segment: Segment
    template_id: str = Field(min_length=1, max_length=40, examples=["scaling_next_step"])


def checked_key(header: str | None) -> str:
    """A campaign is created under the caller's `Idempotency-Key` (required: a marketing send
    that is repeated must never reach people twice)."""
    field = "header.idempotency-key"
    if header is None or not header.strip():
        raise BadRequest(
            f"{field}: required; send a new key per campaign, and the same key when retrying",
            field=field,
        )
    if len(header) > 200:
        raise BadRequest(f"{field}: 1 to 200 characters", field=field)
    return header.strip()


def campaign_id(hospital_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{hospital_id}\x00campaign\x00{idempotency_key}".encode())
    return "m" + digest.hexdigest()[:24]


def _pk(cid: str) -> str:
    return f"CAMPAIGN#{cid}"


def get_item(cid: str) -> dict[str, Any] | None:
    item = (
        store.dynamodb()
        .get_item(
            TableName=store.table_name(), Key=store.key(_pk(cid), "CAMPAIGN"), ConsistentRead=True
        )
        .get("Item")
    )
    return repo.strip(store.from_item(item)) if item else None


def records_of(cid: str) -> Iterator[dict[str, Any]]:
    """Status and reason of every message record referring to the campaign (all pages)."""
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "IndexName": "gsi3",
        "KeyConditionExpression": "gsi3pk = :p",
        "ExpressionAttributeValues": store.values(p=f"REF#campaign#{cid}"),
        "ProjectionExpression": "#s, #r",
        "ExpressionAttributeNames": {"#s": "status", "#r": "reason"},
    }
    while True:
        page = store.dynamodb().query(**kwargs)
        for item in page.get("Items", []):
            yield store.from_item(item)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class CampaignDesk:
    hospital: HospitalConfig
    enqueue: Enqueue
    workers: int = WORKERS

    def marketing_template(self, template_id: str) -> Template:
        template = self.hospital.template(template_id)
        field = "body.template_id"
        if template is None:
            known = ", ".join(t.id for t in self.hospital.templates if t.purpose == "marketing")
            raise BadRequest(
                f"{field}: unknown template '{template_id}'; marketing templates: {known}",
                field=field,
            )
        if template.purpose != "marketing":
            raise BadRequest(
                f"{field}: '{template_id}' is a {template.purpose} template; a campaign sends a "
                "marketing template only",
                field=field,
            )
        unfillable = sorted(set(template.variables) - set(FILLABLE))
        if unfillable:
            raise BadRequest(
                f"{field}: '{template_id}' needs variables a campaign cannot fill: "
                f"{', '.join(unfillable)} (available: {', '.join(FILLABLE)})",
                field=field,
            )
        return template

    def create(
        self, request: CampaignRequest, created_by: str, idempotency_key: str
    ) -> tuple[dict[str, Any], bool]:
        """Create the campaign and queue its messages. Returns (campaign, created); the same key
        returns the same campaign and queues nothing new (unless the first call stopped before
        it finished queueing: then the rest is queued, and the sender drops any repeat)."""
        template = self.marketing_template(request.template_id)
        known_tag(self.hospital, request.segment.tag, "body.segment.tag")
        segment = request.segment.model_copy(update={"marketing_consent_only": True})
        fingerprint = hashlib.sha256(
            f"{request.name}\x00{segment.model_dump_json()}\x00{template.id}".encode()
        ).hexdigest()[:16]
        cid = campaign_id(self.hospital.hospital_id, idempotency_key)
        existing = get_item(cid)
        if existing is not None:
            if existing.get("fingerprint") != fingerprint:
                raise Conflict(
                    "header.idempotency-key: this key was already used for a different campaign",
                    field="header.idempotency-key",
                )
            if existing.get("status") == "queued":
                return self.view(existing), False

        # Every patient of the segment, consented or not, to count the skipped ones.
        evaluation = evaluate(
            segment.model_copy(update={"marketing_consent_only": False}),
            self.hospital,
            with_patients=True,
        )
        consented = [m for m in evaluation.members if m.patient and marketing_consent(m.patient)]
        targets = [m for m in consented if not (m.patient or {}).get("paused")]
        if len(targets) > MAX_TARGETED:
            raise BadRequest(
                f"body.segment: {len(targets)} patients to message, more than the "
                f"{MAX_TARGETED:,} a campaign may send at once; narrow the segment (dates, "
                "no_visit_since) and send it in parts",
                field="body.segment",
                targeted=len(targets),
                limit=MAX_TARGETED,
            )
        counts = {
            "matched": len(evaluation.members),
            "targeted": len(targets),
            "skipped_no_consent": len(evaluation.members) - len(consented),
            "skipped_paused": len(consented) - len(targets),
        }
        item = existing or {
            "pk": _pk(cid),
            "sk": "CAMPAIGN",
            "id": cid,
            "name": request.name,
            "segment": segment.model_dump(mode="json"),
            "template": template.id,
            "channel": template.channel,
            "fingerprint": fingerprint,
            "created_by": created_by,
            "created_at": clock.iso(clock.now()),
            "status": "queueing",
            **counts,
            "segment_cost": evaluation.cost.as_dict(),
        }
        created = existing is None
        if created and not repo.put_new(item):
            # A concurrent request with the same key got here first: answer as a repeat.
            raced = get_item(cid)
            assert raced is not None
            return self.view(raced), False
        self._send(cid, template, targets)
        self._mark_queued(cid, counts)
        stored = get_item(cid)
        assert stored is not None
        return self.view(stored), created

    def _send(self, cid: str, template: Template, targets: list[Member]) -> None:
        requests = [self.message(cid, template, m.patient) for m in targets if m.patient]
        chunks = [requests[i : i + CHUNK] for i in range(0, len(requests), CHUNK)]
        if len(chunks) <= 1 or self.workers <= 1:
            for chunk in chunks:
                self.enqueue(chunk)
            return
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for _ in pool.map(self.enqueue, chunks):  # re-raises the first failure
                pass

    def _mark_queued(self, cid: str, counts: dict[str, int]) -> None:
        """Queueing finished; the counts are those of the run that finished it (a resumed
        creation evaluates the segment again)."""
        sets = {"status": "queued", "queued_at": clock.iso(clock.now()), **counts}
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(_pk(cid), "CAMPAIGN"),
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in sets),
            ExpressionAttributeNames={f"#{k}": k for k in sets},
            ExpressionAttributeValues=store.values(**sets),
        )

    def message(self, cid: str, template: Template, patient: dict[str, Any]) -> MessageRequest:
        return MessageRequest(
            idempotency_key=f"campaign:{cid}:{patient['id']}",
            recipient=patient_recipient(patient),
            template_id=template.id,
            variables=patient_variables(self.hospital, template, patient),
            purpose="marketing",
            refs={"campaign": cid},
        )

    def get(self, cid: str) -> dict[str, Any]:
        item = get_item(cid)
        if item is None:
            raise NotFound(f"no campaign {cid}", field="path.campaign_id")
        return self.view(item)

    def view(self, item: dict[str, Any]) -> dict[str, Any]:
        """The campaign with its results so far: its message records counted by status."""
        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for record in records_of(item["id"]):
            status = str(record.get("status"))
            statuses[status] += 1
            if record.get("reason") and status in ("held", "suppressed", "failed", "retry"):
                reasons[f"{status}: {str(record['reason']).split(':')[0]}"] += 1
        recorded = sum(statuses.values())
        targeted = int(item.get("targeted", 0))
        done = sum(n for status, n in statuses.items() if status in DONE)
        public = {k: v for k, v in item.items() if k != "fingerprint"}
        return {
            **public,
            "results": {
                "by_status": dict(sorted(statuses.items())),
                "reasons": dict(sorted(reasons.items())),
                "awaiting_sender": max(0, targeted - recorded),
                "finished": done,
                "complete": item.get("status") == "queued" and done >= targeted,
            },
        }
