"""The hospital's care network (seed 001: 소아진료 지역협력체계): partner clinics and pharmacies
as an Open Referral HSDS 3 directory, kept in a JSON file beside the hospital config and reviewed
like it (`network.directory` names it; `sotong.config.loader` reads it into `network.hsds`, so
the CDK synth, `sotong validate` and the functions' layer all see the same validated directory).

Only the HSDS fields Sotong reads are modelled; any other HSDS field is kept as it is (and
exported again by `sotong.network.hsds`). Schedules are HSDS `schedule` objects, whose recurrence
fields (`freq`, `byday`, `interval`, `dtstart`, `until`, `count`) are RFC 5545 RRULE parts,
read with python-dateutil in `sotong.network.hours`. One Sotong extension:
`applies_to: public_holiday` marks a schedule that holds on Korean public holidays (the
`holidays` KR calendar: 설날, 추석 and substitute days); on a public holiday only such
schedules hold, on every other day only the others.
"""

# No `from __future__ import annotations` (why: `sotong.config.schema`).
import re
from datetime import date, time
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sotong.phone import normalize_korean_phone

ReferralUrgency = Literal["emergent", "urgent", "routine"]
URGENCIES: tuple[ReferralUrgency, ...] = ("emergent", "urgent", "routine")
PartnerKind = Literal["clinic", "pharmacy", "hospital"]
KINDS: tuple[PartnerKind, ...] = ("clinic", "pharmacy", "hospital")
_ID = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):[0-5]\d$")


class _Hsds(BaseModel):
    """An HSDS object: the fields named here are checked, any other is kept as it came."""

    model_config = ConfigDict(
        defer_build=True, extra="allow", frozen=True, str_strip_whitespace=True
    )


class HsdsPhone(_Hsds):
    number: str = Field(min_length=3, max_length=20)
    description: str | None = None

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        digits = re.sub(r"\D", "", value)
        if not re.match(r"^0\d{8,10}$", digits) and not re.match(r"^1\d{3}\d{4}$", digits):
            raise ValueError(f"'{value}' is not a Korean phone number such as 02-555-0100")
        if digits.startswith("01") and len(digits) in (10, 11):
            normalize_korean_phone(value)  # a mobile must be a real one
        return value


class HsdsSchedule(_Hsds):
    """An HSDS 3 `schedule`: a weekly RRULE (`freq: WEEKLY`, `byday: MO,TU`) with its opening
    time; `closes_at` at or before `opens_at` runs past midnight into the next day."""

    id: str | None = None
    freq: Literal["WEEKLY", "DAILY"] = "WEEKLY"
    interval: int = Field(default=1, ge=1, le=52)
    byday: str | None = Field(default=None, description="RRULE BYDAY, e.g. MO,TU,WE")
    opens_at: str
    closes_at: str
    valid_from: date | None = None
    valid_to: date | None = None
    dtstart: date | None = None
    until: date | None = None
    count: int | None = Field(default=None, ge=1)
    description: str | None = Field(default=None, max_length=200)
    applies_to: Literal["regular", "public_holiday"] = Field(
        default="regular",
        description="Sotong extension: `public_holiday` holds on Korean public holidays only",
    )

    @field_validator("byday")
    @classmethod
    def _byday(cls, value: str | None) -> str | None:
        if value is None:
            return None
        days = [d.strip().upper() for d in value.split(",") if d.strip()]
        bad = [d for d in days if d not in _DAYS]
        if bad or not days:
            raise ValueError(f"byday: '{value}' is not a list of MO,TU,WE,TH,FR,SA,SU")
        return ",".join(days)

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        value = value[:5]
        if not _CLOCK.match(value) or (value.startswith("24") and value != "24:00"):
            raise ValueError(f"'{value}' is not a time of day such as 09:00 or 23:30")
        return value

    @model_validator(mode="after")
    def _weekly_has_days(self) -> Self:
        if self.freq == "WEEKLY" and not self.byday and self.applies_to == "regular":
            raise ValueError("byday: a weekly schedule names its days (e.g. MO,TU,WE,TH,FR)")
        if self.opens_at == self.closes_at and self.opens_at not in ("00:00", "24:00"):
            raise ValueError(f"closes_at: equals opens_at ({self.opens_at}); say 00:00-24:00")
        return self

    @property
    def days(self) -> tuple[str, ...]:
        return tuple((self.byday or ",".join(_DAYS)).split(","))


class HsdsTerm(_Hsds):
    code: str = Field(min_length=1, max_length=40)
    term: str = Field(min_length=1, max_length=60)
    taxonomy: str | None = None


class HsdsAttribute(_Hsds):
    taxonomy_term: HsdsTerm


class HsdsAddress(_Hsds):
    address_1: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=60)
    region: str | None = None
    postal_code: str | None = None
    country: str = "KR"
    address_type: str = "physical"


class HsdsLocation(_Hsds):
    id: str
    name: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    addresses: tuple[HsdsAddress, ...] = Field(default=(), max_length=5)


class HsdsService(_Hsds):
    id: str
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    status: Literal["active", "inactive", "defunct", "temporarily closed"] = "active"
    phones: tuple[HsdsPhone, ...] = Field(default=(), max_length=5)
    schedules: tuple[HsdsSchedule, ...] = Field(max_length=30)
    attributes: tuple[HsdsAttribute, ...] = Field(default=(), max_length=30)

    @model_validator(mode="after")
    def _has_schedules(self) -> Self:
        if not self.schedules:
            raise ValueError("schedules: give at least one (its opening hours)")
        return self


class HsdsOrganization(_Hsds):
    """A partner: its `id` is the organisation id of the `org-<id>` sign-in group."""

    id: str
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    email: str | None = None
    website: str | None = None
    phones: tuple[HsdsPhone, ...] = Field(max_length=5)
    services: tuple[HsdsService, ...] = Field(max_length=10)
    locations: tuple[HsdsLocation, ...] = Field(max_length=5)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                f"'{value}' must be 2-40 lower-case letters, digits or hyphens, starting with a "
                "letter (it becomes the sign-in group org-<id>)"
            )
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        # checked here, not as min_length: pydantic would report an empty list beside an
        # item's own error
        for name in ("phones", "services", "locations"):
            if not getattr(self, name):
                raise ValueError(f"{name}: give at least one")
        return self

    @property
    def kind(self) -> PartnerKind:
        codes = {a.taxonomy_term.code for s in self.services for a in s.attributes}
        return next((k for k in KINDS if k in codes), "clinic")


class HsdsDirectory(_Hsds):
    """The directory file: HSDS 3 organizations with their services and locations."""

    version: str = Field(default="3.0", description="the HSDS version the file follows")
    organizations: tuple[HsdsOrganization, ...] = Field(max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if not self.organizations:
            raise ValueError("organizations: give at least one partner")
        seen: set[str] = set()
        for i, organization in enumerate(self.organizations):
            if organization.id in seen:
                raise ValueError(f"organizations[{i}].id: duplicate partner id '{organization.id}'")
            seen.add(organization.id)
            kinds = {
                a.taxonomy_term.code
                for s in organization.services
                for a in s.attributes
                if a.taxonomy_term.code in KINDS
            }
            if len(kinds) != 1:
                raise ValueError(
                    f"organizations[{i}] ({organization.id}): tag exactly one of "
                    f"{', '.join(KINDS)} in its services' attributes (taxonomy_term.code)"
                )
        return self


def _default_accept() -> dict[ReferralUrgency, int]:
    return {"emergent": 30, "urgent": 120}


class NetworkSettings(BaseModel):
    """`network:` in a hospital config: where its partner directory is and how referrals run."""

    model_config = ConfigDict(
        defer_build=True, extra="forbid", frozen=True, str_strip_whitespace=True
    )

    directory: str = Field(
        pattern=r"^[\w.-]+\.json$",
        description="the HSDS 3 directory file, beside the hospital file (e.g. demo-network.json)",
    )
    hsds: HsdsDirectory | None = Field(
        default=None,
        description="the directory's contents: read from `directory` by the loader (not written "
        "by hand)",
    )
    accept_within_minutes: dict[ReferralUrgency, int] = Field(
        default_factory=_default_accept,
        description="a referral of this urgency still `requested` this long after it was sent "
        "pages the on-call contact (like a critical complaint); an urgency left out never does",
    )
    callback_number: str | None = Field(
        default=None, description="the number guardians are told to call (default: the sender's)"
    )

    @field_validator("accept_within_minutes")
    @classmethod
    def _minutes(cls, value: dict[str, int]) -> dict[str, int]:
        for urgency, minutes in value.items():
            if not 5 <= minutes <= 7 * 24 * 60:
                raise ValueError(f"{urgency}: {minutes} minutes; give 5 to 10080")
        return value

    def organization(self, partner_id: str) -> HsdsOrganization | None:
        if self.hsds is None:
            return None
        return next((o for o in self.hsds.organizations if o.id == partner_id), None)


def clock_of(text: str) -> time:
    """`HH:MM` as a time (24:00 as the end of the day, 23:59:59.999999)."""
    if text == "24:00":
        return time.max
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def dump(directory: HsdsDirectory) -> dict[str, Any]:
    return directory.model_dump(mode="json", exclude_none=True)
