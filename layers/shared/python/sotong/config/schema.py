"""The hospital config: one reviewed file per hospital, the one source of its settings.

Read by the CDK app at synth time (a broken file fails the synth), by the Lambda functions at
run time (as JSON from the hospital-config layer) and by the local stack.
"""

# No `from __future__ import annotations` here: pydantic would compile and evaluate every
# annotation string of the config models at import (this module and the two it imports):
# about 3 ms of every function's cold start.
import re
from datetime import date, time
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sotong.config.network import NetworkSettings
from sotong.config.programme_schema import ProgrammeSettings, check_references
from sotong.health_terms import find_terms
from sotong.phone import normalize_korean_phone

DEFAULT_CATEGORIES: dict[str, str] = {
    "wait_time": "대기시간",
    "staff_attitude": "직원 응대·태도",
    "explanation": "진료·설명",
    "billing": "비용·수납",
    "reservation": "예약·접수",
    "facility": "시설·환경",
    "safety": "환자안전",
    "privacy": "개인정보",
    "other": "기타",
}
URGENCIES = ("critical", "high", "normal")
KINDS = ("complaint", "suggestion", "compliment")

Urgency = Literal["critical", "high", "normal"]
Channel = Literal["web", "app", "phone", "walk_in", "sms", "kakao"]
Purpose = Literal["service", "marketing"]
MessageChannel = Literal["alimtalk", "sms", "email"]
CHANNELS: tuple[Channel, ...] = ("web", "app", "phone", "walk_in", "sms", "kakao")

_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_HOSPITAL_ID = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
_SECRET_ID = re.compile(
    r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PLACEHOLDER = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OFFSET = re.compile(r"^([+-])(\d{1,3})(d|w|mo)$")
AD_PREFIX = "(광고)"


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            "must be lower-case letters, digits and underscores, starting with a letter (max 40)"
        )
    return value


def _phone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a phone number as text, e.g. '010-1234-5678'")
    return normalize_korean_phone(value)


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"'{value}' is not an e-mail address")
    return value


def _local_time_input(value: Any) -> Any:
    # YAML 1.1 reads an unquoted 21:00 as the number 1260 (base 60), which pydantic would take
    # as seconds: 00:21 UTC. Only text ("21:00") or a time object is a time of day here.
    if not isinstance(value, str | time):
        raise ValueError(
            'must be a local time in quotes, e.g. "21:00" (unquoted, YAML reads a number)'
        )
    return value


def _local_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError(
            "must be a local time without a zone offset; the hospital timezone applies"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Phone = Annotated[str, BeforeValidator(_phone)]
Email = Annotated[str, AfterValidator(_email)]
LocalTime = Annotated[time, BeforeValidator(_local_time_input), AfterValidator(_local_time)]


def placeholders(text: str) -> list[str]:
    """The `#{variable}` names a template text uses, in order of first use."""
    seen: dict[str, None] = {}
    for name in _PLACEHOLDER.findall(text):
        seen.setdefault(name, None)
    return list(seen)


class _Model(BaseModel):
    # Validators are built when a config is first validated (synth, the CLI, the local stack),
    # not at import: a function loads the build's validated config (`load_hospital`).
    model_config = ConfigDict(
        defer_build=True, extra="forbid", frozen=True, str_strip_whitespace=True
    )


class SecretRef(_Model):
    """A pointer to a Secrets Manager secret; the value itself never appears in the config."""

    secret: str = Field(description="Secrets Manager secret name or ARN")
    key: str | None = Field(default=None, description="JSON key inside the secret, if any")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_values(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError(
                "inline secret values are not allowed; reference a Secrets Manager secret "
                "instead, e.g. {secret: sotong/demo/solapi, key: api_key}"
            )
        return data

    @field_validator("secret")
    @classmethod
    def _secret_id(cls, value: str) -> str:
        if not _SECRET_ID.match(value):
            raise ValueError(f"'{value}' is not a Secrets Manager secret name or ARN")
        return value


class Contact(_Model):
    name: str = Field(min_length=1, max_length=50)
    phone: Phone | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if not self.phone and not self.email:
            raise ValueError("a contact needs a phone or an e-mail address")
        return self


StaffChannel = Literal["sms", "email"]


class StaffContact(Contact):
    """A department's staff member who is told of its complaints, by their chosen channel."""

    channel: StaffChannel = Field(
        default="sms", description="how they are told: `sms` (their phone) or `email`"
    )

    @model_validator(mode="after")
    def _has_channel_address(self) -> Self:
        if self.channel == "sms" and not self.phone:
            raise ValueError("channel sms needs a phone")
        if self.channel == "email" and not self.email:
            raise ValueError("channel email needs an e-mail address")
        return self


class Department(_Model):
    id: Slug
    name: str = Field(min_length=1, max_length=50, description="Korean name shown to staff")
    head: Contact
    staff: tuple[StaffContact, ...] = Field(
        default=(),
        max_length=20,
        description="told when a complaint is routed to the department, and sent its daily "
        "digest of what is open and due; none: the department head (SMS, or e-mail without a "
        "phone)",
    )

    @property
    def alert_contacts(self) -> tuple[StaffContact, ...]:
        """Who hears of the department's complaints: `staff`, else the head."""
        if self.staff:
            return self.staff
        head = self.head
        channel: StaffChannel = "sms" if head.phone else "email"
        return (StaffContact(name=head.name, phone=head.phone, email=head.email, channel=channel),)


SlaClock = Literal["calendar", "business"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class SlaClocks(_Model):
    """Which clock each SLA target runs on: `calendar` hours around the clock, or `business`
    hours (the hospital's `business_hours`: opening hours, public holidays, closed days)."""

    acknowledge: SlaClock = "calendar"
    resolve: SlaClock = "calendar"


def _clocks(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("calendar", "business"):
            raise ValueError(
                f"'{value}' is not a clock: calendar (around the clock) or business (the "
                "business_hours), or one per target: {acknowledge: calendar, resolve: business}"
            )
        return {"acknowledge": value, "resolve": value}
    return value


class SlaHours(_Model):
    acknowledge: float = Field(gt=0, le=24 * 30, description="hours to acknowledge")
    resolve: float = Field(gt=0, le=24 * 90, description="hours to resolve")
    clock: Annotated[SlaClocks, BeforeValidator(_clocks)] = Field(
        default_factory=SlaClocks,
        description="calendar (default) or business, for both targets or one per target",
    )

    @model_validator(mode="after")
    def _order(self) -> Self:
        same_clock = self.clock.acknowledge == self.clock.resolve
        if same_clock and self.resolve < self.acknowledge:
            raise ValueError("resolve hours must not be shorter than acknowledge hours")
        return self

    @property
    def business(self) -> bool:
        return "business" in (self.clock.acknowledge, self.clock.resolve)


def _spans(value: Any) -> Any:
    """A weekday's opening hours: "09:00-18:00", or a list of spans for a break."""
    spans = [value] if isinstance(value, str) else value
    if not isinstance(spans, list | tuple) or not spans:
        raise ValueError(
            'opening hours are "09:00-18:00" or a list of spans, e.g. '
            '["09:00-12:30", "13:30-18:00"]; leave a closed weekday out'
        )
    previous_end = -1
    out = []
    for span in spans:
        text = span.replace(" ", "") if isinstance(span, str) else span
        if not isinstance(text, str) or not _SPAN.match(text):
            raise ValueError(f"'{span}' is not a span of local times like \"09:00-18:00\"")
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in text.split("-"))
        if end <= start:
            raise ValueError(f"'{span}': the span must end after it starts")
        if start < previous_end:
            raise ValueError(f"'{span}': the spans must be in order and must not overlap")
        previous_end = end
        out.append(text)
    return tuple(out)


OpeningSpans = Annotated[tuple[str, ...], BeforeValidator(_spans)]


class BusinessHours(_Model):
    """When business-hours SLA clocks run, in the hospital's time zone."""

    opening: dict[Weekday, OpeningSpans] = Field(
        description='local opening hours per weekday (mon ... sun), e.g. fri: "09:00-18:00"; '
        "a weekday left out is closed"
    )
    public_holidays: Literal["KR"] | None = Field(
        default="KR",
        description="closed on this country's public holidays (the `holidays` package: lunar "
        "holidays such as 설날 and 추석, and substitute holidays); null: open on them",
    )
    closed_days: tuple[date, ...] = Field(
        default=(), description="the hospital's own closed days, e.g. 2026-12-31"
    )

    @field_validator("opening")
    @classmethod
    def _some_opening(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if not value:
            raise ValueError("give the opening hours of at least one weekday")
        return value

    @field_validator("closed_days")
    @classmethod
    def _unique_days(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        twice = sorted({d.isoformat() for d in value if value.count(d) > 1})
        if twice:
            raise ValueError(f"listed twice: {', '.join(twice)}")
        return value


def _default_sla() -> dict[Urgency, SlaHours]:
    return {
        "critical": SlaHours(acknowledge=1, resolve=24),
        "high": SlaHours(acknowledge=4, resolve=72),
        "normal": SlaHours(acknowledge=24, resolve=168),
    }


class ClassifierRule(_Model):
    """Korean stems and phrases; matching is on substrings, since particles attach to words.

    `phrases`: any one of them in the text. `all_of`: a combination, when a phrase of every group
    is in the text; a group is a list of phrases or the name of a shipped list (see
    `sotong/complaints/rules/shipped.yaml`)."""

    id: Slug | None = Field(default=None, description="stable id, to refer to the rule")
    about: str | None = Field(default=None, max_length=300, description="what the rule is for")
    category: str | None = None
    urgency: Urgency | None = None
    kind: Literal["complaint", "suggestion", "compliment"] | None = None
    phrases: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...] | str, ...] = ()
    harm: bool = Field(
        default=False,
        description="matched like a critical phrase (stems; a precaution or an absence takes its "
        "urgency away) whatever urgency it sets; critical rules always are",
    )

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if not (self.category or self.urgency or self.kind):
            raise ValueError("a rule must set a category, an urgency or a kind")
        if bool(self.phrases) == bool(self.all_of):
            raise ValueError("a rule has either phrases or all_of (a combination), not both")
        if self.all_of and len(self.all_of) < 2:
            raise ValueError("all_of: a combination needs at least two groups")
        if any(not group for group in self.all_of):
            raise ValueError("all_of: a group must hold at least one phrase")
        return self


class AnswerTemplate(_Model):
    """A saved answer staff start a reply to the patient from (the console's reply box)."""

    id: Slug
    title: str = Field(min_length=1, max_length=40, description="what staff pick it by")
    text: str = Field(min_length=1, max_length=1000, description="the message it starts with")


_DEFAULT_ANSWERS: tuple[dict[str, str], ...] = (
    dict(
        id="empathy",
        title="공감",
        text="많이 답답하셨겠네요. 말씀해 주셔서 감사합니다. 담당 부서에서 바로 확인하고 "
        "다시 연락드리겠습니다.",
    ),
    dict(
        id="apology",
        title="사과",
        text="불편을 끼쳐 죄송합니다. 같은 일이 되풀이되지 않도록 담당 부서와 함께 살피겠습니다.",
    ),
    dict(
        id="checking",
        title="확인 중",
        text="말씀하신 내용을 확인하고 있습니다. 확인되는 대로 바로 알려드리겠습니다.",
    ),
    dict(
        id="thanks",
        title="감사",
        text="소중한 의견 감사합니다. 더 나은 병원이 되도록 반영하겠습니다.",
    ),
)


def default_answer_templates() -> tuple[AnswerTemplate, ...]:
    """The answers a hospital gets when its config names none (built when a config is
    validated: a model made at import would build its validator at every cold start)."""
    return tuple(AnswerTemplate(**answer) for answer in _DEFAULT_ANSWERS)


class ComplaintSettings(_Model):
    extra_categories: dict[Slug, str] = Field(
        default_factory=dict, description="hospital-specific categories: id -> Korean label"
    )
    routing: dict[str, Slug] = Field(default_factory=dict, description="category -> department id")
    default_department: Slug
    rules: tuple[ClassifierRule, ...] = Field(
        default=(), description="added to the shipped default rules"
    )
    disable_rules: tuple[Slug, ...] = Field(
        default=(), description="ids of shipped rules this hospital turns off"
    )
    bedrock_model_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.:\-]{3,120}$",
        description="an Amazon Bedrock model the second-opinion classifier also asks "
        "(it may only raise urgency); off when unset",
    )
    text_max_chars: int = Field(default=4000, ge=100, le=4000)
    answer_templates: tuple[AnswerTemplate, ...] = Field(
        default_factory=default_answer_templates,
        max_length=50,
        description="saved answers the staff console offers in its reply box (an empty list: none)",
    )

    @property
    def categories(self) -> dict[str, str]:
        return {**DEFAULT_CATEGORIES, **self.extra_categories}

    @model_validator(mode="after")
    def _known_categories(self) -> Self:
        clash = sorted(set(self.extra_categories) & set(DEFAULT_CATEGORIES))
        if clash:
            raise ValueError(f"extra_categories: repeats default categories: {', '.join(clash)}")
        known = self.categories
        for category in self.routing:
            if category not in known:
                raise ValueError(
                    f"routing.{category}: unknown category '{category}'; known: {', '.join(known)}"
                )
        for index, rule in enumerate(self.rules):
            if rule.category and rule.category not in known:
                raise ValueError(f"rules[{index}].category: unknown category '{rule.category}'")
        ids = [rule.id for rule in self.rules if rule.id]
        if len(ids) != len(set(ids)):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"rules: ids used twice: {', '.join(twice)}")
        answers = [answer.id for answer in self.answer_templates]
        if len(answers) != len(set(answers)):
            twice = sorted({i for i in answers if answers.count(i) > 1})
            raise ValueError(f"answer_templates: ids used twice: {', '.join(twice)}")
        return self


class QuietHours(_Model):
    start: LocalTime = Field(description="local time from which messages are held, e.g. 21:00")
    end: LocalTime = Field(description="local time at which held messages go out, e.g. 08:00")


class SenderProfile(_Model):
    provider: Literal["sandbox", "solapi"] = "sandbox"
    display_name: str = Field(min_length=1, max_length=30, description="sender name in messages")
    sms_sender_number: Phone = Field(description="registered caller number (발신번호)")
    callback_number: str = Field(
        min_length=8, max_length=20, description="hospital number patients call back"
    )
    opt_out_number: str = Field(
        pattern=r"^080-?\d{3,4}-?\d{4}$", description="free 080 opt-out number for ads"
    )
    email_from: Email
    kakao_sender_key: SecretRef | None = Field(default=None, description="AlimTalk pfId/senderKey")
    provider_credentials: SecretRef | None = None
    webhook_secret: SecretRef | None = Field(
        default=None, description="HMAC secret the provider signs its callbacks with"
    )
    rate_per_second: float = Field(default=10, gt=0, le=1000)
    balance_alarm_krw: int = Field(
        default=50_000,
        ge=0,
        le=100_000_000,
        description="the alarm provider-balance-low pages when the provider account's cash "
        "balance (원) falls below this; 50,000 is about 7,000 AlimTalk or 6,000 SMS",
    )
    quiet_hours: QuietHours | None = Field(
        default=None,
        description="patient messages (not urgent ones, not staff alerts) are held during these "
        "hours; ads to patients with night consent are not, unless `marketing.night_ads` is "
        "`never`",
    )

    @model_validator(mode="after")
    def _real_provider_needs_secrets(self) -> Self:
        if self.provider != "sandbox":
            missing = [
                name
                for name in ("kakao_sender_key", "provider_credentials", "webhook_secret")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"provider '{self.provider}' needs secret references for: {', '.join(missing)}"
                )
        return self


STAFF_TEMPLATES = frozenset(
    {
        "staff_alert",
        "staff_critical",
        "staff_routed",
        "staff_routed_email",
        "staff_digest",
        "staff_digest_email",
    }
)
"""Templates sent to staff phones, not patients: free of the health-information check."""
PATIENT_VARIABLES = ("hospital", "name", "callback", "opt_out")
"""What a plan step or a campaign can fill in its template (`recall.service.patient_variables`):
no appointment time, which the treatment record does not carry."""


def _health_terms_problem(template_id: str, terms: list[str]) -> str:
    return (
        f"template '{template_id}' names a treatment or health term ({', '.join(terms)}); a "
        "patient message may be read by a "
        "guardian or on a locked screen (개인정보 보호법 §23, 의료법 §19): say it without the "
        "diagnosis or treatment, e.g. '시술 후 관리 안내'"
    )


class Template(_Model):
    id: Slug
    channel: MessageChannel
    purpose: Purpose = "service"
    text: str = Field(min_length=1, max_length=2000)
    subject: str | None = Field(default=None, max_length=200, description="e-mail subject")
    kakao_template_code: str | None = Field(
        default=None, description="the provider's code of the approved AlimTalk template"
    )

    @property
    def variables(self) -> list[str]:
        return placeholders((self.subject or "") + "\n" + self.text)

    @model_validator(mode="after")
    def _channel_rules(self) -> Self:
        if self.channel == "alimtalk":
            if self.purpose == "marketing":
                raise ValueError("AlimTalk is for informational messages only: use sms for ads")
            if not self.kakao_template_code:
                raise ValueError("an alimtalk template needs its approved kakao_template_code")
        if self.channel == "email" and not self.subject:
            raise ValueError("an e-mail template needs a subject")
        if self.purpose == "marketing" and not self.text.startswith(AD_PREFIX):
            raise ValueError(f"a marketing template must start with '{AD_PREFIX}'")
        if self.to_patients:
            for field in ("subject", "text"):
                terms = find_terms(getattr(self, field) or "")
                if terms:
                    raise ValueError(f"{field}: {_health_terms_problem(self.id, terms)}")
        return self

    @property
    def to_patients(self) -> bool:
        """Sent to patients (or their guardians): every template but those staff receive."""
        return self.id not in STAFF_TEMPLATES


def _offset(value: str) -> str:
    if not _OFFSET.match(value):
        raise ValueError(f"'{value}' is not an offset like -1d, +1d, +2w or +6mo")
    return value


CancelCondition = Literal["future_booking", "repeat_treatment", "patient_paused", "visit_since"]


class PlanStep(_Model):
    id: Slug
    offset: Annotated[str, AfterValidator(_offset)] = Field(description="from the treatment date")
    at: LocalTime = Field(description="local time of day to send")
    template: Slug
    purpose: Purpose = "service"
    cancel_if: tuple[CancelCondition, ...] = ()
    spread_minutes: int = Field(
        default=60,
        ge=0,
        le=720,
        description="send window after `at`: each patient's touchpoint is placed at a fixed "
        "offset inside [at, at + spread) (a hash of patient and step), so a day's touchpoints "
        "do not all fall due in the same second; 0 sends every one at `at`",
    )

    @model_validator(mode="after")
    def _window_within_the_day(self) -> Self:
        if self.at.hour * 60 + self.at.minute + self.spread_minutes > 24 * 60:
            raise ValueError(
                f"spread_minutes: {self.spread_minutes} minutes after {self.at:%H:%M} runs into "
                "the next day; start earlier or spread less"
            )
        return self

    @property
    def offset_parts(self) -> tuple[int, str]:
        match = _OFFSET.match(self.offset)
        assert match
        sign, amount, unit = match.groups()
        return (-1 if sign == "-" else 1) * int(amount), unit


class TreatmentTag(_Model):
    id: Slug
    name: str = Field(min_length=1, max_length=50)
    department: Slug
    manual: str = Field(default="", max_length=5000, description="consultation manual for staff")
    plan: tuple[PlanStep, ...] = Field(min_length=1)


class MarketingSettings(_Model):
    min_days_between_ads: int = Field(
        default=7,
        ge=0,
        le=365,
        description="frequency cap: a patient is sent at most one advertising message (campaign "
        "or marketing plan step) in this many days; 0 turns the cap off",
    )
    night_ads: Literal["with_consent", "never"] = Field(
        default="with_consent",
        description="advertising between 21:00 and 08:00 (정보통신망법 §50): `with_consent` sends "
        "it to patients who gave the separate night consent, and for them `sender.quiet_hours` "
        "does not hold ads (their consent is for night-time ads); `never` holds every ad in "
        "those hours and in the quiet hours, consent or not (stricter by choice)",
    )


AgencyKind = Literal[
    "care_sos", "health_centre", "welfare_centre", "dementia_centre", "housing", "district", "other"
]


class CareAgency(_Model):
    """An agency of integrated care plans (보건소, 복지관, 치매안심센터, 돌봄SOS, 주거상담소...):
    owns plan activities; its staff sign in as `agency` with the group `org-<id>`."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$", description="its `org-<id>` group's id")
    name: str = Field(min_length=1, max_length=60)
    kind: AgencyKind = "other"
    contact: StaffContact = Field(description="told of new activities and reminders")


class HospitalConfig(_Model):
    hospital_id: str = Field(description="lower-case id used in the stack name and tags")
    name: str = Field(min_length=1, max_length=100)
    timezone: str = "Asia/Seoul"
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="public base URL of the API (custom domain) used in links sent to patients",
    )
    departments: tuple[Department, ...] = Field(min_length=1)
    on_call: Contact = Field(description="alerted at once for critical complaints")
    cs_admin: Contact
    ops_contacts: tuple[Contact, ...] = Field(
        default=(),
        description="the ops team, paged (e-mail, SMS) with the on-call contact by every alarm",
    )
    complaints: ComplaintSettings
    sla: dict[Urgency, SlaHours] = Field(default_factory=_default_sla)
    business_hours: BusinessHours | None = Field(
        default=None, description="when business-hours SLA clocks run (`sla.<urgency>.clock`)"
    )
    channels: tuple[Channel, ...] = CHANNELS
    sender: SenderProfile
    templates: tuple[Template, ...] = ()
    treatment_tags: tuple[TreatmentTag, ...] = ()
    marketing: MarketingSettings = Field(default_factory=MarketingSettings)
    network: NetworkSettings | None = Field(
        default=None,
        description="the care network: partner clinics and pharmacies (an HSDS 3 file) and "
        "referrals (docs/care-network.md)",
    )
    programmes: ProgrammeSettings | None = Field(
        default=None, description="patient support programmes (docs/programmes.md)"
    )
    care_agencies: tuple[CareAgency, ...] = Field(
        default=(), description="agencies of integrated care plans (docs/care-plans.md)"
    )

    @field_validator("care_agencies")
    @classmethod
    def _unique_agencies(cls, value: tuple[CareAgency, ...]) -> tuple[CareAgency, ...]:
        _no_duplicates([a.id for a in value], "care_agencies", "agency id")
        return value

    @field_validator("hospital_id")
    @classmethod
    def _hospital_id(cls, value: str) -> str:
        if not _HOSPITAL_ID.match(value):
            raise ValueError(
                "must be 2-30 lower-case letters, digits or hyphens, starting with a letter"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone such as Asia/Seoul") from None
        return value

    @field_validator("sla")
    @classmethod
    def _every_urgency(cls, value: dict[Urgency, SlaHours]) -> dict[Urgency, SlaHours]:
        missing = [u for u in URGENCIES if u not in value]
        if missing:
            raise ValueError(f"SLA hours missing for urgency: {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _business_hours_defined(self) -> Self:
        if self.business_hours is None:
            for urgency, hours in self.sla.items():
                if hours.business:
                    raise ValueError(
                        f"sla.{urgency}.clock: a business-hours clock needs a business_hours "
                        'section (opening hours per weekday, e.g. mon: "09:00-18:00")'
                    )
        return self

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _no_duplicates(value, "channels", "channel")
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        _no_duplicates([d.id for d in self.departments], "departments", "department id")
        _no_duplicates([t.id for t in self.templates], "templates", "template id")
        _no_duplicates([t.id for t in self.treatment_tags], "treatment_tags", "treatment tag id")
        departments = {d.id for d in self.departments}
        routing = self.complaints
        for category, department in routing.routing.items():
            if department not in departments:
                raise ValueError(
                    f"complaints.routing.{category}: department '{department}' is not defined "
                    f"in departments ({', '.join(sorted(departments))})"
                )
        if routing.default_department not in departments:
            raise ValueError(
                f"complaints.default_department: department '{routing.default_department}' "
                "is not defined in departments"
            )
        templates = {t.id: t for t in self.templates}
        tag_names = [t.name for t in self.treatment_tags]
        for i, patient_template in enumerate(self.templates):
            for field in ("subject", "text") if patient_template.to_patients else ():
                terms = find_terms(getattr(patient_template, field) or "", tag_names)
                if terms:
                    problem = _health_terms_problem(patient_template.id, terms)
                    raise ValueError(f"templates[{i}].{field}: {problem}")
        for i, tag in enumerate(self.treatment_tags):
            where = f"treatment_tags[{i}] ({tag.id})"
            if tag.department not in departments:
                raise ValueError(f"{where}.department: '{tag.department}' is not a department")
            _no_duplicates([s.id for s in tag.plan], f"{where}.plan", "step id")
            for j, step in enumerate(tag.plan):
                template = templates.get(step.template)
                if template is None:
                    raise ValueError(
                        f"{where}.plan[{j}].template: '{step.template}' is not a template"
                    )
                if template.purpose != step.purpose:
                    raise ValueError(
                        f"{where}.plan[{j}]: step purpose '{step.purpose}' differs from "
                        f"template '{template.id}' purpose '{template.purpose}'"
                    )
                unknown = [v for v in template.variables if v not in PATIENT_VARIABLES]
                if unknown:
                    raise ValueError(
                        f"{where}.plan[{j}]: template '{template.id}' uses "
                        f"{', '.join(f'#{{{v}}}' for v in unknown)}, which a plan step cannot "
                        f"fill (it knows only {', '.join(PATIENT_VARIABLES)}): say it without"
                    )
        return self

    @model_validator(mode="after")
    def _programmes_refer(self) -> Self:
        check_references(self)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def department(self, department_id: str) -> Department | None:
        return next((d for d in self.departments if d.id == department_id), None)

    def template(self, template_id: str) -> Template | None:
        return next((t for t in self.templates if t.id == template_id), None)

    def care_agency(self, agency_id: str) -> CareAgency | None:
        return next((a for a in self.care_agencies if a.id == agency_id), None)

    def treatment_tag(self, tag_id: str) -> TreatmentTag | None:
        return next((t for t in self.treatment_tags if t.id == tag_id), None)

    def secret_refs(self) -> list[SecretRef]:
        sender = self.sender
        refs = (sender.kakao_sender_key, sender.provider_credentials, sender.webhook_secret)
        return [ref for ref in refs if ref is not None]


def _no_duplicates(values: Any, path: str, what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{path}: duplicate {what} '{value}'")
        seen.add(value)
