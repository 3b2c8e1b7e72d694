"""Campaigns: one marketing template sent to a segment, as a job that runs at the send rate.

- `POST /campaigns` creates the job and returns at once (`planned`). A campaign is one per
  business key, the segment + template + send date: the same request again (whatever its
  `Idempotency-Key`, a retry or a double click) answers the same campaign with 200.
- The `campaign_runner` schedule (every minute) advances each active job under a lease of its
  own: it pages through the segment (`segments.read_page`, resumable from the job's cursor) and
  writes each page's message requests (outbox items) together with the job's new cursor and
  counts in one transaction, so a crash, a timeout or a concurrent runner can neither skip nor
  repeat a patient. A run queues at most `sender.rate_per_second x 60` messages per job: a
  200,000-patient campaign takes as long as the provider needs to send it, not one API call.
- Per recipient the transaction also sets `last_ad_at` on the patient, on condition that they
  still exist and had no advertising within `marketing.min_days_between_ads` days (the frequency
  cap): a transaction of 49 recipients (an outbox item and a patient update each) and the job.
- The job skips only what it knows: no marketing consent (`skipped_no_consent`), paused
  (`skipped_paused`), advertised recently (`skipped_frequency`), erased (`skipped_erased`). Every
  other rule stays the pipeline's: `(광고)`, sender name and free opt-out number, opt-outs, the
  21:00-08:00 hold without night consent, no AlimTalk for ads, consent checked again at send.
- `POST /campaigns/{id}/cancel` stops it between pages (the next page's job update is refused).
- `POST /campaigns/preview` (`CampaignDesk.preview`) shows, before anything is created, the
  message as the patient will see it (rendered by `notify.rules.render`, the sender's own code:
  `(광고)`, sender name, 080 line) and, per member of the segment, what the runner and then the
  sender would do with it: skipped (no consent, paused, frequency cap), suppressed (opted out,
  no contact consent), held (night advertising, quiet hours: with the release time) or sent,
  by `notify.rules.decide` at the time the runner would queue it.
- Stored through a `CampaignRepository` (`sotong.recall.repository`: one item per job, on a
  sparse index while planned or running, what the runner reads: never a Scan). Results come
  from the message records referring to it, counted up to `RESULTS_LIMIT`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sotong import clock
from sotong.config.schema import PATIENT_VARIABLES, HospitalConfig, Template
from sotong.dates import SendDay
from sotong.errors import BadRequest, Conflict, NotFound
from sotong.fields import Line
from sotong.notify import rules
from sotong.notify.model import DONE, MessageRequest
from sotong.recall.records import Patient
from sotong.recall.repository import (
    AdMark,
    CampaignRepository,
    DynamoCampaignRepository,
    DynamoPatientRepository,
    PatientRepository,
)
from sotong.recall.segments import (
    Entry,
    Segment,
    evaluate,
    known_tag,
    marketing_consent,
    read_page,
)
from sotong.recall.service import patient_recipient, patient_variables

TimeLeft = Callable[[], float]
OptOuts = Callable[[Sequence[str]], dict[str, frozenset[str]]]
"""address -> the channels it opted out of (`sms`, `email`, `all`, ...)"""
PREVIEW_LIMIT = 5_000
"""segment members a preview evaluates one by one (a larger segment says `counted_all: false`)"""
SAMPLE_NAME = "홍길동"
FILLABLE = PATIENT_VARIABLES
ACTIVE = ("planned", "running")
PAGE = 100
"""treatments read from the tag index per page (their patients: one BatchGetItem)"""
PER_TRANSACTION = 49
"""recipients per TransactWriteItems: 2 actions each, plus the job's update, within 100"""
LEASE_HOLD = timedelta(seconds=150)
"""longer than the runner's 120 s timeout"""
STOP_MARGIN_S = 20.0
RESULTS_LIMIT = 20_000
"""message records counted for a campaign's results (a larger one says `counted_all: false`)"""
COUNTERS = (
    "treatments_read",
    "evaluated",
    "queued",
    "skipped_no_consent",
    "skipped_paused",
    "skipped_frequency",
    "skipped_erased",
    "pages",
)


class CampaignRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)

    name: Line = Field(min_length=1, max_length=100, examples=["2026 겨울 스케일링 안내"])
    segment: Segment
    template_id: Line = Field(min_length=1, max_length=40, examples=["scaling_next_step"])
    send_on: SendDay | None = Field(
        default=None,
        description="local day the campaign starts sending (default today); part of what makes "
        "it the same campaign: the same segment and template on the same day is one campaign",
    )


class CampaignPreview(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)

    segment: Segment
    template_id: Line = Field(min_length=1, max_length=40, examples=["scaling_next_step"])
    send_on: SendDay | None = Field(
        default=None,
        description="local day it would start sending (default today): the rules are applied "
        "at the time the runner would queue it (now, or 00:00 of a later day)",
    )


def _stored_opt_outs(hospital_id: str) -> OptOuts:
    from sotong.notify import records

    return lambda addresses: records.opted_out_many(hospital_id, list(addresses))


def checked_key(header: str | None) -> str:
    """The caller's `Idempotency-Key` (required, as for any send; the campaign itself is one
    per segment, template and send date, whatever the key)."""
    field = "header.idempotency-key"
    if header is None or not header.strip():
        raise BadRequest(
            f"{field}: required; send a new key per campaign, and the same key when retrying",
            field=field,
        )
    if len(header) > 200:
        raise BadRequest(f"{field}: 1 to 200 characters", field=field)
    return header.strip()


def business_key(segment: Segment, template_id: str, send_on: date) -> str:
    return f"{segment.model_dump_json()}\x00{template_id}\x00{send_on.isoformat()}"


def campaign_id(hospital_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{hospital_id}\x00campaign\x00{key}".encode())
    return "m" + digest.hexdigest()[:24]


def get_item(cid: str) -> dict[str, Any] | None:
    return DynamoCampaignRepository().campaign(cid)


def active_jobs() -> list[str]:
    """Ids of the planned and running campaigns, oldest send date first."""
    return DynamoCampaignRepository().active_campaigns()


def message(
    hospital: HospitalConfig, cid: str, template: Template, patient: Patient
) -> MessageRequest:
    return MessageRequest(
        idempotency_key=f"campaign:{cid}:{patient.id}",
        recipient=patient_recipient(patient),
        template_id=template.id,
        variables=patient_variables(hospital, template, patient),
        purpose="marketing",
        refs={"campaign": cid},
    )


class CampaignDesk:
    """What the API does with campaigns: create, read, cancel (over a `CampaignRepository`, the
    records table unless another is given)."""

    def __init__(
        self, hospital: HospitalConfig, campaigns: CampaignRepository | None = None
    ) -> None:
        self.hospital = hospital
        self.campaigns: CampaignRepository = campaigns or DynamoCampaignRepository()

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

    def preview(
        self,
        request: CampaignPreview,
        now: datetime,
        *,
        patients: PatientRepository | None = None,
        opt_outs: OptOuts | None = None,
    ) -> dict[str, Any]:
        """The message as the patient will see it, and what would happen to whom: counts per
        rule over the segment (up to `PREVIEW_LIMIT` members), nothing written."""
        template = self.marketing_template(request.template_id)
        known_tag(self.hospital, request.segment.tag, "body.segment.tag")
        zone = self.hospital.zone
        today = now.astimezone(zone).date()
        send_on = request.send_on or today
        if send_on < today:
            raise BadRequest(
                f"body.send_on: {send_on} is in the past (today is {today})", field="body.send_on"
            )
        at = now if send_on == today else datetime.combine(send_on, time.min, tzinfo=zone)
        segment = request.segment.model_copy(update={"marketing_consent_only": False})
        evaluation = evaluate(segment, self.hospital, with_patients=True, patients=patients)
        members = [m for m in evaluation.members if m.patient is not None]
        counted = members[:PREVIEW_LIMIT]
        cap = timedelta(days=self.hospital.marketing.min_days_between_ads)
        lookup = opt_outs or _stored_opt_outs(self.hospital.hospital_id)
        addresses = [str(m.patient.phone or m.patient.email or "") for m in counted if m.patient]
        refused = lookup([a for a in dict.fromkeys(addresses) if a]) if addresses else {}
        outcomes: Counter[tuple[str, str]] = Counter()
        release: dict[str, datetime] = {}
        sample: rules.Rendered | None = None
        sampled = "example"
        for member in counted:
            patient = member.patient
            assert patient is not None
            if not marketing_consent(patient):
                outcomes[("skip", "no_marketing_consent")] += 1
                continue
            if patient.paused:
                outcomes[("skip", "paused")] += 1
                continue
            if patient.advertised_after(at - cap):
                outcomes[("skip", "frequency_cap")] += 1
                continue
            queued = message(self.hospital, "preview", template, patient)
            address = str(patient.phone or patient.email or "")
            decision = rules.decide(queued, self.hospital, at, refused.get(address, frozenset()))
            reason = (decision.reason or "").split(":")[0]
            outcomes[(decision.action, reason)] += 1
            if decision.action == "hold" and decision.release_at is not None:
                release[reason] = min(release.get(reason, decision.release_at), decision.release_at)
            if sample is None and decision.rendered is not None:
                sample, sampled = decision.rendered, "member"
        if sample is None:  # nobody would receive it: the text as it would read, for an example
            variables = {
                "hospital": self.hospital.sender.display_name,
                "name": SAMPLE_NAME,
                "callback": self.hospital.sender.callback_number,
                "opt_out": self.hospital.sender.opt_out_number,
            }
            wanted = {k: v for k, v in variables.items() if k in template.variables}
            sample = rules.render(template, wanted, self.hospital)
        order = {"send": 0, "hold": 1, "skip": 2, "suppress": 3, "fail": 4}
        rows = [
            {
                "action": action,
                "rule": reason or "send",
                "count": n,
                **(
                    {"release_at": release[reason].astimezone(zone).isoformat()}
                    if reason in release
                    else {}
                ),
            }
            for (action, reason), n in sorted(
                outcomes.items(), key=lambda item: (order.get(item[0][0], 9), -item[1])
            )
        ]
        totals = Counter[str]()
        for (action, _), n in outcomes.items():
            totals[action] += n
        return {
            "template": {"id": template.id, "channel": template.channel},
            "send_on": send_on.isoformat(),
            "evaluated_at": at.astimezone(zone).isoformat(),
            "message": {
                "channel": sample.channel,
                "subject": sample.subject,
                "text": sample.text,
                "characters": len(sample.text),
                "sample": sampled,
            },
            "segment_count": len(members),
            "evaluated": len(counted),
            "counted_all": len(members) <= PREVIEW_LIMIT,
            "totals": {name: totals[name] for name in ("send", "hold", "skip", "suppress", "fail")},
            "rules": rows,
            "cost": evaluation.cost.as_dict(),
        }

    def create(
        self, request: CampaignRequest, created_by: str, idempotency_key: str
    ) -> tuple[dict[str, Any], bool]:
        """Create the campaign job (nothing is read or sent yet). Returns (campaign, created):
        the same segment, template and send date give the same campaign, created once."""
        template = self.marketing_template(request.template_id)
        known_tag(self.hospital, request.segment.tag, "body.segment.tag")
        segment = request.segment.model_copy(update={"marketing_consent_only": True})
        now = clock.now()
        today = now.astimezone(self.hospital.zone).date()
        send_on = request.send_on or today
        if send_on < today:
            raise BadRequest(
                f"body.send_on: {send_on} is in the past (today is {today})", field="body.send_on"
            )
        cid = campaign_id(self.hospital.hospital_id, business_key(segment, template.id, send_on))
        existing = self.campaigns.campaign(cid)
        if existing is not None:
            return self.view(existing), False
        created_at = clock.iso(now)
        item: dict[str, Any] = {
            "id": cid,
            "name": request.name,
            "segment": segment.model_dump(mode="json"),
            "template": template.id,
            "channel": template.channel,
            "send_on": send_on.isoformat(),
            "idempotency_key": idempotency_key,
            "created_by": created_by,
            "created_at": created_at,
            "status": "planned",
            "version": 0,
            **dict.fromkeys(COUNTERS, 0),
        }
        if not self.campaigns.add_campaign(item):  # a concurrent request got here first
            raced = self.campaigns.campaign(cid)
            assert raced is not None
            return self.view(raced), False
        return self.view(item), True

    def get(self, cid: str) -> dict[str, Any]:
        item = self.campaigns.campaign(cid)
        if item is None:
            raise NotFound(f"no campaign {cid}", field="path.campaign_id")
        return self.view(item)

    def cancel(self, cid: str, by: str) -> dict[str, Any]:
        """Stop the campaign: the runner's next page is refused, so what is queued stays
        queued and nothing more is. Cancelling again answers the same; a finished campaign
        cannot be cancelled (409)."""
        if not self.campaigns.cancel_campaign(cid, by, clock.now()):
            item = self.campaigns.campaign(cid)
            if item is None:
                raise NotFound(f"no campaign {cid}", field="path.campaign_id")
            if item.get("status") != "cancelled":
                raise Conflict(
                    f"campaign {cid} is {item.get('status')}: only a planned or running campaign "
                    "can be cancelled",
                    field="path.campaign_id",
                )
        return self.get(cid)

    def view(self, item: dict[str, Any]) -> dict[str, Any]:
        """The campaign with its progress and its results so far (message records by status)."""
        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for record in self.campaigns.campaign_results(item["id"], RESULTS_LIMIT):
            status = str(record.get("status"))
            statuses[status] += 1
            if record.get("reason") and status in ("held", "suppressed", "failed", "retry"):
                reasons[f"{status}: {str(record['reason']).split(':')[0]}"] += 1
        recorded = sum(statuses.values())
        queued = int(item.get("queued", 0))
        done = sum(n for status, n in statuses.items() if status in DONE)
        public = {k: v for k, v in item.items() if k not in ("cursor", "version")}
        return {
            **public,
            "results": {
                "by_status": dict(sorted(statuses.items())),
                "reasons": dict(sorted(reasons.items())),
                "awaiting_sender": max(0, queued - recorded),
                "finished": done,
                "counted_all": recorded < RESULTS_LIMIT,
                "complete": item.get("status") == "done" and done >= queued,
            },
        }


# --- the runner -----------------------------------------------------------------------------------
@dataclass
class JobRun:
    """What one run did for one campaign."""

    id: str
    outcome: str = ""
    """done, budget (the run's share sent), time (deadline), cancelled, moved_on (another
    runner wrote the page first: a lease that ran out), busy (another runner holds the lease),
    waiting (send date ahead), gone"""
    queued: int = 0
    evaluated: int = 0
    pages: int = 0
    transactions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outcome": self.outcome,
            "queued": self.queued,
            "evaluated": self.evaluated,
            "pages": self.pages,
            "transactions": self.transactions,
        }


@dataclass
class _Chunk:
    """Consecutive index entries written in one transaction with the job's progress."""

    cursor: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    sends: list[Patient] = field(default_factory=list)
    """the patients to message"""
    final: bool = False


class CampaignRunner:
    """Advances the active campaign jobs; patients, leases and the frequency cap through a
    `PatientRepository` (the records table unless another is given)."""

    def __init__(
        self,
        hospital: HospitalConfig,
        patients: PatientRepository | None = None,
        campaigns: CampaignRepository | None = None,
    ) -> None:
        self.hospital = hospital
        self.patients: PatientRepository = patients or DynamoPatientRepository()
        self.campaigns: CampaignRepository = campaigns or DynamoCampaignRepository()

    @property
    def budget(self) -> int:
        """Messages per job per run: a minute's worth at the provider's rate."""
        return max(1, int(self.hospital.sender.rate_per_second * 60))

    def run(self, now: datetime, time_left: TimeLeft | None = None) -> list[JobRun]:
        runs = []
        for cid in self.campaigns.active_campaigns():
            if time_left is not None and time_left() < STOP_MARGIN_S:
                break
            runs.append(self.run_job(cid, now, time_left))
        return runs

    def run_job(self, cid: str, now: datetime, time_left: TimeLeft | None = None) -> JobRun:
        result = JobRun(cid)
        owner = uuid.uuid4().hex
        lease = f"campaign:{cid}"
        if not self.patients.take_lease(lease, owner, now, LEASE_HOLD):
            result.outcome = "busy"
            return result
        try:
            self._advance(cid, now, time_left, result)
        finally:
            self.patients.release_lease(lease, owner)
        return result

    def _advance(self, cid: str, now: datetime, time_left: TimeLeft | None, result: JobRun) -> None:
        job = self.campaigns.campaign(cid)  # read under the lease
        if job is None or job.get("status") not in ACTIVE:
            result.outcome = "gone" if job is None else str(job.get("status"))
            return
        if date.fromisoformat(job["send_on"]) > now.astimezone(self.hospital.zone).date():
            result.outcome = "waiting"
            return
        template = self.hospital.template(job["template"])
        if template is None:  # the template left the config: nothing more can be sent
            CampaignDesk(self.hospital, self.campaigns).cancel(
                cid, f"campaign_runner: no template {job['template']}"
            )
            result.outcome = "cancelled"
            return
        segment = Segment.model_validate({**job["segment"], "marketing_consent_only": False})
        cap = timedelta(days=self.hospital.marketing.min_days_between_ads)
        left = self.budget
        carry = _Chunk()  # entries taken but not yet written: a transaction can span pages
        while True:
            if result.pages and time_left is not None and time_left() < STOP_MARGIN_S:
                if carry.cursor and not self._write(cid, job, carry, template, now, cap, result):
                    return
                result.outcome = "time"
                return
            page = read_page(
                segment, self.hospital, carry.cursor or job.get("cursor"), PAGE, self.patients
            )
            result.pages += 1
            carry.counts["pages"] += 1
            ready, carry, stopped = self._chunks(
                carry, page.entries, page.next_cursor is None, left, now - cap
            )
            for chunk in ready:
                if not self._write(cid, job, chunk, template, now, cap, result):
                    return
                left -= len(chunk.sends)
                if chunk.final:
                    result.outcome = "done"
                    return
            if stopped:
                result.outcome = "budget"
                return

    def _write(
        self,
        cid: str,
        job: dict[str, Any],
        chunk: _Chunk,
        template: Template,
        now: datetime,
        cap: timedelta,
        result: JobRun,
    ) -> bool:
        if self._commit(job, chunk, template, now, cap, result):
            return True
        moved = self.campaigns.campaign(cid)
        cancelled = moved is None or moved.get("status") == "cancelled"
        result.outcome = "cancelled" if cancelled else "moved_on"
        return False

    def _chunks(
        self, start: _Chunk, entries: list[Entry], last_page: bool, left: int, cutoff: datetime
    ) -> tuple[list[_Chunk], _Chunk, bool]:
        """Cut the entries (after those already in `start`) into transactions of up to
        PER_TRANSACTION recipients. Returns (chunks to write now, the open chunk to carry to
        the next page, whether the run's budget ended here: the rest of the page is read again
        by the next run)."""
        chunks = [start]
        given = len(start.sends)
        consumed = 0
        stopped = False
        for entry in entries:
            chunk = chunks[-1]
            chunk.cursor = entry.cursor
            consumed += 1
            chunk.counts["treatments_read"] += 1
            patient = entry.patient
            if patient is None:
                chunk.counts["evaluated"] += 1
                chunk.counts["skipped_erased"] += 1
            elif entry.member:
                chunk.counts["evaluated"] += 1
                if not marketing_consent(patient):
                    chunk.counts["skipped_no_consent"] += 1
                elif patient.paused:
                    chunk.counts["skipped_paused"] += 1
                elif patient.advertised_after(cutoff):
                    chunk.counts["skipped_frequency"] += 1
                else:
                    chunk.sends.append(patient)
                    given += 1
            if given >= left:
                stopped = True
                break
            if len(chunk.sends) >= PER_TRANSACTION:
                chunks.append(_Chunk())
        if chunks[-1].cursor is None and len(chunks) > 1:
            chunks.pop()  # opened after a full chunk, and nothing came
        last = chunks[-1]
        last.final = last_page and consumed == len(entries)
        if last.final or stopped or len(last.sends) >= PER_TRANSACTION:
            return chunks, _Chunk(), stopped
        return chunks[:-1], last, stopped

    def _commit(
        self,
        job: dict[str, Any],
        chunk: _Chunk,
        template: Template,
        now: datetime,
        cap: timedelta,
        result: JobRun,
    ) -> bool:
        """Write the chunk's messages with the job's progress; False when the job was changed
        meanwhile (cancelled, or advanced by another runner): nothing of the chunk is written.
        A recipient refused by their condition (advertised meanwhile, erased) is skipped."""
        while True:
            counts = Counter(chunk.counts)
            counts["queued"] += len(chunk.sends)
            sends = [
                (
                    message(self.hospital, job["id"], template, patient),
                    AdMark(
                        patient_id=patient.id, at=now, by=f"campaign:{job['id']}", cutoff=now - cap
                    ),
                )
                for patient in chunk.sends
            ]
            written = self.campaigns.write_page(
                self.hospital.hospital_id,
                job,
                self._progress(job, counts, chunk, now),
                chunk.final,
                sends,
            )
            result.transactions += written.requests
            if written.job_moved_on:
                return False
            if not written.written:
                self._skip_refused(chunk, written.refused)
                continue
            for name in COUNTERS:
                job[name] = int(job.get(name, 0)) + counts[name]
            job["version"] = int(job.get("version", 0)) + 1
            job["status"] = "done" if chunk.final else "running"
            if chunk.cursor:
                job["cursor"] = chunk.cursor
            result.queued += counts["queued"]
            result.evaluated += counts["evaluated"]
            return True

    def _skip_refused(self, chunk: _Chunk, refused: set[int]) -> None:
        kept = []
        for index, patient in enumerate(chunk.sends):
            if index not in refused:
                kept.append(patient)
            elif self.patients.patient(patient.id) is None:
                chunk.counts["skipped_erased"] += 1
            else:
                chunk.counts["skipped_frequency"] += 1
        chunk.sends = kept

    def _progress(
        self, job: dict[str, Any], counts: Counter[str], chunk: _Chunk, now: datetime
    ) -> dict[str, Any]:
        """The job's counts, status and cursor after the chunk."""
        stamp = clock.iso(now)
        sets: dict[str, Any] = {name: int(job.get(name, 0)) + counts[name] for name in COUNTERS} | {
            "status": "done" if chunk.final else "running",
            "updated_at": stamp,
        }
        sets["version"] = int(job.get("version", 0)) + 1
        if chunk.cursor and not chunk.final:
            sets["cursor"] = chunk.cursor
        if chunk.final:
            sets["finished_at"] = stamp
        return sets
