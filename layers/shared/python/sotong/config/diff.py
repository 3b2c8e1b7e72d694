"""What a hospital config change changes for patients: `sotong config-diff OLD NEW`.

Reviewers read this beside the YAML diff: the messages patients get (templates), when they get
them (treatment plans, quiet hours, ads at night, the ad frequency cap), how fast complaints are
answered (SLA) and where patients can reach the hospital (channels, sender numbers). Changes to
the ops team's alarms and the send rate follow, as `operations:` lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sotong.config.schema import HospitalConfig


def _by_id(items: Iterable[Any]) -> dict[str, Any]:
    return {item.id: item for item in items}


def _dump(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped


def _changed(label: str, old: Any, new: Any) -> list[str]:
    return [f"{label}: {old!r} -> {new!r}"] if old != new else []


def patient_changes(old: HospitalConfig, new: HospitalConfig) -> list[str]:
    """One line per change a patient would notice, in a stable order."""
    out: list[str] = []
    before, after = _by_id(old.templates), _by_id(new.templates)
    for template_id in sorted(set(before) | set(after)):
        if template_id not in before:
            b = after[template_id]
            out.append(f"template {template_id} added ({b.channel}, {b.purpose}): {b.text!r}")
        elif template_id not in after:
            out.append(f"template {template_id} removed")
        else:
            a, b = before[template_id], after[template_id]
            for field in ("channel", "purpose", "text", "subject", "kakao_template_code"):
                out += _changed(
                    f"template {template_id} {field}", getattr(a, field), getattr(b, field)
                )
    tags_before, tags_after = _by_id(old.treatment_tags), _by_id(new.treatment_tags)
    for tag_id in sorted(set(tags_before) | set(tags_after)):
        if tag_id not in tags_before:
            steps = ", ".join(f"{s.id} {s.offset} {s.at}" for s in tags_after[tag_id].plan)
            out.append(f"treatment tag {tag_id} added: {steps}")
            continue
        if tag_id not in tags_after:
            out.append(f"treatment tag {tag_id} removed (its planned messages stop)")
            continue
        a, b = tags_before[tag_id], tags_after[tag_id]
        steps_before, steps_after = _by_id(a.plan), _by_id(b.plan)
        for step_id in sorted(set(steps_before) | set(steps_after)):
            if step_id not in steps_before:
                y = steps_after[step_id]
                out.append(f"plan {tag_id}.{step_id} added: {y.offset} at {y.at} ({y.template})")
            elif step_id not in steps_after:
                out.append(f"plan {tag_id}.{step_id} removed")
            else:
                x, y = steps_before[step_id], steps_after[step_id]
                fields_x, fields_y = _dump(x) or {}, _dump(y) or {}
                for field in sorted(set(fields_x) | set(fields_y)):
                    out += _changed(
                        f"plan {tag_id}.{step_id} {field}", fields_x.get(field), fields_y.get(field)
                    )
    out += _changed("quiet hours", _dump(old.sender.quiet_hours), _dump(new.sender.quiet_hours))
    out += _changed("ads at night", old.marketing.night_ads, new.marketing.night_ads)
    out += _changed(
        "ads at most once in days",
        old.marketing.min_days_between_ads,
        new.marketing.min_days_between_ads,
    )
    for field in ("display_name", "sms_sender_number", "callback_number", "opt_out_number"):
        out += _changed(f"sender {field}", getattr(old.sender, field), getattr(new.sender, field))
    out += _changed("channels", list(old.channels), list(new.channels))
    for urgency in sorted(set(old.sla) | set(new.sla)):
        out += _changed(
            f"sla {urgency}",
            _dump(old.sla.get(urgency)),
            _dump(new.sla.get(urgency)),
        )
    out += _changed("business hours (SLA)", _dump(old.business_hours), _dump(new.business_hours))
    return out


def operations_changes(old: HospitalConfig, new: HospitalConfig) -> list[str]:
    """What the change does to the ops team's alarms and the send rate (patients do not see it)."""
    out: list[str] = []
    for field in ("provider", "rate_per_second", "balance_alarm_krw"):
        out += _changed(f"sender {field}", getattr(old.sender, field), getattr(new.sender, field))
    return out
