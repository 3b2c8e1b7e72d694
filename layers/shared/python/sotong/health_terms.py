"""Health information that must not reach a patient's phone: the one list of sensitive terms.

Messages may reach a guardian's or a family member's phone, and a KakaoTalk notification shows
on a locked screen; 개인정보 보호법 §23 makes health data sensitive and 의료법 §19 forbids leaking
what a patient was treated for. So the text of a patient message names no diagnosis, treatment or
procedure: "시술 후 관리 안내", not "보톡스 시술 후".

Two uses, one list:

- the hospital config check (`sotong.config.schema`) rejects a patient-facing template whose
  fixed text names a term here or one of the hospital's own treatment-tag names; there is no
  per-template acknowledgement: a template goes to every patient a plan or a campaign reaches,
  and the wording can always be made general;
- staff free text (`#{message}`, `#{outcome}`, a recall conversation reply) that names one is
  refused with a 422 naming the field and the terms found, until the staff member confirms
  (`confirm_health_terms: true`): a reply about the patient's own care may need the word.

Matching is on substrings (Korean particles attach to words: 임플란트가, 임플란트를), Latin
terms as whole words, case-insensitive. Words that are also parts of everyday words (암 in 암호,
유산 in 유산균) are matched as patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from sotong.errors import SotongError

CONFIRM_FIELD = "confirm_health_terms"

SENSITIVE_TERMS: dict[str, tuple[str, ...]] = {
    # Procedures and treatments a message would reveal (dental, skin, surgery, oncology).
    "procedure": (
        "보톡스",
        "보툴리눔",
        "필러",
        "임플란트",
        "발치",
        "신경치료",
        "근관치료",
        "사랑니",
        "치아교정",
        "틀니",
        "지방흡입",
        "쌍꺼풀",
        "성형",
        "리프팅",
        "레이저토닝",
        "모발이식",
        "항암",
        "방사선치료",
        "투석",
        "인공수정",
        "시험관",
        "낙태",
        "임신중절",
        "botox",
        "implant",
    ),
    # Diagnoses and conditions.
    "diagnosis": (
        "진단",
        "종양",
        "백혈병",
        "림프종",
        "당뇨",
        "고혈압",
        "결핵",
        "간염",
        "간경화",
        "뇌전증",
        "간질",
        "치매",
        "파킨슨",
        "탈모",
        "여드름",
        "아토피",
        "건선",
        "치주염",
        "치주질환",
        "탈장",
        "치질",
        "요실금",
        "발기부전",
        "cancer",
        "tumor",
    ),
    # Mental health.
    "mental_health": (
        "우울",
        "정신",
        "조현병",
        "양극성",
        "조울",
        "공황",
        "불안장애",
        "강박",
        "자살",
        "자해",
        "섭식장애",
        "거식",
        "폭식증",
        "중독",
        "adhd",
        "ptsd",
    ),
    # Reproductive and sexual health.
    "sexual_reproductive": (
        "임신",
        "임산부",
        "산전검사",
        "난임",
        "불임",
        "피임",
        "사후피임",
        "성병",
        "성매개",
        "매독",
        "임질",
        "클라미디아",
        "헤르페스",
        "곤지름",
        "인유두종",
        "에이즈",
        "hiv",
        "hpv",
        "aids",
        "std",
    ),
}
"""Terms by kind; the whole list is every value. Latin terms are lower-case (matched as words)."""

# Words that are also parts of everyday words: matched only where they stand as the term.
# 암 (cancer): 위암, 폐암, 암 진단, 암이, 암을... but not 암호, 암막, 암기, 보람.
_PATTERNS: dict[str, str] = {
    "암": r"(?:(?<![가-힣])암(?![호막기산석벽흑시묵송살초컷탉])|(?:위|폐|간|대장|직장|유방|갑상선"
    r"|자궁경부|자궁|난소|전립선|췌장|피부|구강|혈액|골수|식도|담낭|신장|방광|뇌|설)암)",
    # 유산 (miscarriage), not 유산균 (probiotics) or 문화유산.
    "유산": r"(?<!문화)유산(?![균소])",
}


@dataclass(frozen=True)
class _Latin:
    """A Latin sensitive term and its compiled pattern (a whole word, case-insensitive)."""

    term: str
    pattern: re.Pattern[str]


_KOREAN_TERMS = tuple(
    term for terms in SENSITIVE_TERMS.values() for term in terms if not term.isascii()
)


@cache
def _patterns() -> tuple[tuple[_Latin, ...], tuple[tuple[str, re.Pattern[str]], ...]]:
    """Compiled on first use (a few milliseconds every function would pay at start otherwise)."""
    latin = tuple(
        _Latin(term, re.compile(rf"(?<![a-z]){re.escape(term)}(?![a-z])", re.I))
        for terms in SENSITIVE_TERMS.values()
        for term in terms
        if term.isascii()
    )
    return latin, tuple((term, re.compile(pattern)) for term, pattern in _PATTERNS.items())


def all_terms() -> tuple[str, ...]:
    """Every sensitive term (pattern words included), in list order."""
    return (*(t for terms in SENSITIVE_TERMS.values() for t in terms), *_PATTERNS)


def find_terms(text: str, extra: Iterable[str] = ()) -> list[str]:
    """The sensitive terms `text` names, plus any of `extra` (e.g. the hospital's treatment-tag
    names), each once, in the order of the list; `#{placeholders}` are not text."""
    text = re.sub(r"#\{[A-Za-z_][A-Za-z0-9_]*\}", " ", text).lower()
    found: dict[str, None] = {}
    for term in _KOREAN_TERMS:
        if term in text:
            found.setdefault(term, None)
    latin_terms, short_terms = _patterns()
    for latin in latin_terms:
        if latin.pattern.search(text):
            found.setdefault(latin.term, None)
    for term, pattern in short_terms:
        if pattern.search(text):
            found.setdefault(term, None)
    for name in extra:
        name = name.strip()
        # A tag name in full ("레이저 토닝"), or written without its spaces ("레이저토닝").
        spaced, joined = name.lower(), re.sub(r"\s+", "", name.lower())
        if name and (spaced in text or joined in re.sub(r"\s+", "", text)):
            found.setdefault(name, None)
    return list(found)


class HealthTermsInText(SotongError):
    """Staff free text for a patient message names a diagnosis or a treatment (a 422)."""

    status = 422
    code = "health_terms"


def check_staff_text(
    text: str | None, field: str, *, confirmed: bool, extra: Iterable[str] = ()
) -> None:
    """Refuse staff free text that goes to a patient and names a sensitive term, unless the
    staff member confirmed it (`confirm_health_terms: true`): a 422 naming the field and the
    terms, so the staff app can warn before anything is sent."""
    if confirmed or not text:
        return
    terms = find_terms(text, extra)
    if not terms:
        return
    raise HealthTermsInText(
        f"{field}: the message names {', '.join(terms)}; a patient's messages may be read by a "
        "guardian or on a locked screen, so leave diagnoses and treatments out, or send it "
        f"again with {CONFIRM_FIELD}: true",
        field=field,
        terms=terms,
        fields=[
            {
                "field": field,
                "problem": f"names health information: {', '.join(terms)}",
                "type": "health_terms",
            },
        ],
        confirm_with=CONFIRM_FIELD,
    )
