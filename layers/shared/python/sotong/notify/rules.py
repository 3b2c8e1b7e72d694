"""The sending rules, in one place for every producer: templates, consent, opt-out, send times.

Pure functions of the request, the hospital config and the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from sotong.config.schema import AD_PREFIX, HospitalConfig, Template, placeholders
from sotong.notify.model import MessageRequest

NIGHT_START = time(21, 0)
NIGHT_END = time(8, 0)
_PLACEHOLDER = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\}")


class InvalidTemplate(Exception):
    pass


@dataclass(frozen=True)
class Rendered:
    """A template filled in for one message: its channel, text and subject."""

    channel: Literal["alimtalk", "sms", "email"]
    text: str
    subject: str | None
    template: Template


@dataclass(frozen=True)
class Decision:
    """What the rules say to do with a request now (send, hold, fail or suppress), and why."""

    action: Literal["send", "hold", "fail", "suppress"]
    reason: str | None = None
    rendered: Rendered | None = None
    release_at: datetime | None = None
    sms_fallback: bool = False


def fill(text: str, variables: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], text)


def render(template: Template, variables: dict[str, str], hospital: HospitalConfig) -> Rendered:
    """Fill `#{var}` parts only; a missing or extra variable fails the whole message."""
    expected = set(template.variables)
    given = set(variables)
    missing, extra = sorted(expected - given), sorted(given - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing variables: {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected variables: {', '.join(extra)}")
        raise InvalidTemplate(f"template '{template.id}': {'; '.join(parts)}")
    for name, value in variables.items():
        if placeholders(value):
            raise InvalidTemplate(f"template '{template.id}': variable '{name}' holds a #{{...}}")
    text = fill(template.text, variables)
    subject = fill(template.subject, variables) if template.subject else None
    if template.purpose == "marketing":
        text = advertising_text(text, hospital)
    return Rendered(channel=template.channel, text=text, subject=subject, template=template)


def advertising_text(text: str, hospital: HospitalConfig) -> str:
    """정보통신망법 §50: `(광고)` first, the sender's name, and the free opt-out number."""
    sender = hospital.sender
    body = text.removeprefix(AD_PREFIX).lstrip()
    if sender.display_name not in body:
        body = f"[{sender.display_name}] {body}"
    if sender.opt_out_number.replace("-", "") not in body.replace("-", ""):
        body = f"{body}\n무료수신거부 {sender.opt_out_number}"
    return f"{AD_PREFIX} {body}"


def _in_window(local: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def _next_end(now_local: datetime, end: time) -> datetime:
    candidate = now_local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return candidate if candidate > now_local else candidate + timedelta(days=1)


def quiet_until(hospital: HospitalConfig, now: datetime) -> datetime | None:
    """The end of the hospital's quiet hours when `now` is inside them, else None. Staff
    alerts are never held by the sender; a producer of a staff message that can wait (a
    non-urgent routing alert) sets it as the request's `not_before`."""
    quiet = hospital.sender.quiet_hours
    local = now.astimezone(hospital.zone)
    if quiet is None or not _in_window(local.time(), quiet.start, quiet.end):
        return None
    return _next_end(local, quiet.end)


def release_time(
    request: MessageRequest, hospital: HospitalConfig, now: datetime
) -> tuple[datetime | None, str | None]:
    """When a message may leave, if not now: (release time, why) or (None, None).

    Which rule wins at night (docs/configure-a-hospital.md, "Night-time messages"):
    - the law (정보통신망법 §50) always holds an ad between 21:00 and 08:00 for a patient without
      the separate night consent (`night_advertising`);
    - the hospital's quiet hours hold every other non-urgent patient message (`quiet_hours`),
      except an ad to a patient who gave the night consent: that consent is the patient asking
      for night-time ads, and holding them anyway would make it mean nothing;
    - `marketing.night_ads: never` is the hospital being stricter by choice: no ad leaves in
      21:00-08:00 or in the quiet hours, whatever the patient consented to.
    """
    if request.not_before and request.not_before > now:
        return request.not_before, "not_before"
    local = now.astimezone(hospital.zone)
    ad = request.purpose == "marketing"
    consented_night_ad = (
        ad and request.recipient.night_consent and hospital.marketing.night_ads == "with_consent"
    )
    if ad and not consented_night_ad and _in_window(local.time(), NIGHT_START, NIGHT_END):
        return _next_end(local, NIGHT_END), "night_advertising"
    quiet = hospital.sender.quiet_hours
    held_quietly = request.recipient.kind == "patient" and not request.urgent
    if (
        quiet
        and held_quietly
        and not consented_night_ad
        and _in_window(local.time(), quiet.start, quiet.end)
    ):
        return _next_end(local, quiet.end), "quiet_hours"
    return None, None


def decide(
    request: MessageRequest,
    hospital: HospitalConfig,
    now: datetime,
    opted_out: frozenset[str] = frozenset(),
) -> Decision:
    """What to do with a request now: send it, hold it, fail it or suppress it (and why)."""
    template = hospital.template(request.template_id)
    if template is None:
        return Decision("fail", f"invalid_template: unknown template '{request.template_id}'")
    if request.channel and request.channel != template.channel:
        return Decision(
            "fail",
            f"invalid_template: template '{template.id}' is for {template.channel}, "
            f"not {request.channel}",
        )
    if request.purpose == "marketing" and template.channel == "alimtalk":
        return Decision("fail", "ad_by_alimtalk: advertising never goes by AlimTalk")
    if request.purpose != template.purpose:
        return Decision(
            "fail",
            f"invalid_template: request purpose '{request.purpose}' but template "
            f"'{template.id}' is '{template.purpose}'",
        )
    try:
        rendered = render(template, request.variables, hospital)
    except InvalidTemplate as error:
        return Decision("fail", f"invalid_template: {error}")
    recipient = request.recipient
    needs = "email" if template.channel == "email" else "phone"
    if getattr(recipient, needs) is None:
        return Decision("fail", f"no_contact: the recipient has no {needs}")
    if recipient.kind == "patient":
        if request.purpose == "marketing" and not recipient.marketing_consent:
            return Decision("suppress", "no_marketing_consent")
        if not recipient.contact_consent:
            return Decision("suppress", "no_contact_consent")
    if template.channel in opted_out or "all" in opted_out:
        return Decision("suppress", f"opted_out: {template.channel}")
    release_at, why = release_time(request, hospital, now)
    if release_at is not None:
        return Decision("hold", why, rendered=rendered, release_at=release_at)
    sms_fallback = template.channel == "alimtalk" and "sms" not in opted_out
    return Decision("send", rendered=rendered, sms_fallback=sms_fallback)
