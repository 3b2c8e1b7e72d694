"""The `programmes` section of the hospital config: the patient support programmes a hospital
publishes (support groups run by a counsellor, nutrition counselling, family sessions).

Each programme's sessions are an RFC 5545 recurrence rule (`RRULE`, read with python-dateutil)
from a first day at a local time of day, in the hospital's time zone; public holidays (KR) and
the dates listed are skipped. Checked at synth like the rest of the file: a rule dateutil cannot
read, a department, treatment tag or template that does not exist fails the synth with the field.
"""

# No `from __future__ import annotations` (why: `sotong.config.schema`).
import re
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from sotong.config.schema import HospitalConfig

_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_RULE_PARTS = re.compile(r"^[A-Z]+=[A-Z0-9,+\-:]+(;[A-Z]+=[A-Z0-9,+\-:]+)*$")
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY")
ProgrammeMessage = Literal["code", "confirmed", "waiting", "promoted", "reminder", "feedback"]
PROGRAMME_TEMPLATES: tuple[ProgrammeMessage, ...] = get_args(ProgrammeMessage)
"""what a programme says to a participant, each a template id under `programmes.templates`"""
PROGRAMME_VARIABLES: dict[str, tuple[str, ...]] = {
    "code": ("hospital", "code", "minutes"),
    "confirmed": ("hospital", "name", "programme", "when", "place", "callback"),
    "waiting": ("hospital", "name", "programme", "when", "position", "callback"),
    "promoted": ("hospital", "name", "programme", "when", "place", "callback"),
    "reminder": ("hospital", "name", "programme", "when", "place", "callback"),
    "feedback": ("hospital", "name", "programme", "callback"),
}
"""the variables the programmes desk fills in each of those templates"""


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            "must be lower-case letters, digits and underscores, starting with a letter (max 40)"
        )
    return value


def _time_input(value: Any) -> Any:
    if not isinstance(value, str | time):
        raise ValueError('must be a local time in quotes, e.g. "14:00"')
    return value


Slug = Annotated[str, AfterValidator(_slug)]
LocalTime = Annotated[time, BeforeValidator(_time_input)]


class _Model(BaseModel):
    model_config = ConfigDict(
        defer_build=True, extra="forbid", frozen=True, str_strip_whitespace=True
    )


class SessionRule(_Model):
    """When a programme meets: `rrule` from `first_day` at `start`, for `minutes`."""

    rrule: str = Field(
        description="RFC 5545 RRULE without DTSTART, e.g. FREQ=WEEKLY;BYDAY=TU,TH",
        max_length=200,
    )
    first_day: date = Field(description="the first day the rule may fall on (DTSTART's date)")
    start: LocalTime = Field(description="local time the session starts, e.g. 14:00")
    minutes: int = Field(ge=15, le=480, description="how long a session lasts")
    skip_public_holidays: bool = Field(
        default=True, description="no session on a Korean public holiday (설날, 추석, ...)"
    )
    skip_dates: tuple[date, ...] = Field(
        default=(), max_length=100, description="other days without a session (closures)"
    )

    @model_validator(mode="after")
    def _readable(self) -> Self:
        rule = self.rrule.removeprefix("RRULE:")
        if not _RULE_PARTS.match(rule):
            raise ValueError(f"rrule: '{self.rrule}' is not an RRULE like FREQ=WEEKLY;BYDAY=TU")
        parts = dict(part.split("=", 1) for part in rule.split(";"))
        if parts.get("FREQ") not in FREQUENCIES:
            raise ValueError(f"rrule: FREQ must be one of {', '.join(FREQUENCIES)}")
        if "DTSTART" in parts or "BYHOUR" in parts or "BYMINUTE" in parts:
            raise ValueError("rrule: give the start as first_day and start, not in the rule")
        from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

        try:
            rrulestr(rule, dtstart=datetime.combine(self.first_day, self.start))
        except (ValueError, TypeError) as error:
            raise ValueError(f"rrule: dateutil cannot read '{self.rrule}': {error}") from None
        if self.start.hour * 60 + self.start.minute + self.minutes > 24 * 60:
            raise ValueError("minutes: the session runs into the next day")
        return self

    @property
    def rule(self) -> str:
        return self.rrule.removeprefix("RRULE:")


class OpenTo(_Model):
    """Who may join: patients with a recorded treatment of one of `treatment_tags` or in one
    of `departments`; both empty, anyone with a verified phone (family sessions)."""

    treatment_tags: tuple[Slug, ...] = ()
    departments: tuple[Slug, ...] = ()

    @property
    def anyone(self) -> bool:
        return not self.treatment_tags and not self.departments


class Programme(_Model):
    id: Slug
    kind: Literal["support_group", "nutrition", "family", "education"]
    name: str = Field(min_length=1, max_length=50, description="shown on the public page")
    summary: str = Field(min_length=1, max_length=500, description="what it is, for patients")
    department: Slug = Field(description="the department that runs it (its staff see sign-ups)")
    facilitator: str = Field(min_length=1, max_length=50, description="counsellor, dietitian...")
    place: str = Field(min_length=1, max_length=100)
    capacity: int = Field(ge=1, le=200, description="seats per session; more join the waiting list")
    sessions: SessionRule
    open_to: OpenTo = Field(default_factory=OpenTo)
    avoid_treatment_days: bool = Field(
        default=True,
        description="offer a patient no session on a day of their own recorded treatment or "
        "booking (the matching by treatment schedule)",
    )


class ProgrammeSettings(_Model):
    templates: dict[ProgrammeMessage, Slug] = Field(
        description="the template of each message to a participant: "
        + ", ".join(PROGRAMME_TEMPLATES)
    )
    code_minutes: int = Field(default=10, ge=3, le=30, description="a code's life")
    offer_weeks: int = Field(
        default=8, ge=1, le=26, description="how far ahead sessions are offered"
    )
    reminder_at: LocalTime = Field(default=time(18, 0), description="the day before, at")
    feedback_at: LocalTime = Field(default=time(11, 0), description="the day after, at")
    catalogue: tuple[Programme, ...] = Field(default=(), max_length=100)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = [t for t in PROGRAMME_TEMPLATES if t not in self.templates]
        if missing:
            raise ValueError(f"templates: missing {', '.join(missing)}")
        seen: set[str] = set()
        for programme in self.catalogue:
            if programme.id in seen:
                raise ValueError(f"catalogue: duplicate programme id '{programme.id}'")
            seen.add(programme.id)
        return self

    def programme(self, programme_id: str) -> Programme | None:
        return next((p for p in self.catalogue if p.id == programme_id), None)


def check_references(config: "HospitalConfig") -> None:
    """The departments, treatment tags and templates the programmes name exist, and each
    template uses only what the desk fills in (`PROGRAMME_VARIABLES`)."""
    settings = config.programmes
    if settings is None:
        return
    departments = {d.id for d in config.departments}
    tags = {t.id for t in config.treatment_tags}
    for kind, template_id in settings.templates.items():
        template = config.template(template_id)
        where = f"programmes.templates.{kind}"
        if template is None:
            raise ValueError(f"{where}: '{template_id}' is not a template")
        if template.purpose != "service":
            raise ValueError(f"{where}: '{template_id}' is an ad; programme messages are service")
        unknown = [v for v in template.variables if v not in PROGRAMME_VARIABLES[kind]]
        if unknown:
            raise ValueError(
                f"{where}: '{template_id}' uses {', '.join('#{' + v + '}' for v in unknown)}; "
                f"it may use {', '.join(PROGRAMME_VARIABLES[kind])}"
            )
    for i, programme in enumerate(settings.catalogue):
        where = f"programmes.catalogue[{i}] ({programme.id})"
        if programme.department not in departments:
            raise ValueError(f"{where}.department: '{programme.department}' is not a department")
        for tag in programme.open_to.treatment_tags:
            if tag not in tags:
                raise ValueError(f"{where}.open_to.treatment_tags: '{tag}' is not a treatment tag")
        for department in programme.open_to.departments:
            if department not in departments:
                raise ValueError(f"{where}.open_to.departments: '{department}' is not a department")
