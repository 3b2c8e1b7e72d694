"""`sotong simulate care-case`: the article's case (seed 002) on the running local stack.

A man living alone on dialysis three times a week, dizzy and with low blood pressure after it,
showing early signs of dementia, taken to an integrated care conference (의료·돌봄
통합지원회의) that decides five agencies' support: 돌봄SOS hospital transport and escort, the
public health centre's health companion, a welfare centre's meal delivery, the dementia centre's
support and a housing counselling centre. Over the stack's HTTP API, signed in as the CS admin.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from datetime import date, timedelta
from typing import Any

CASE = {
    "name": "김영수",
    "department": "customer_service",
    "summary": "홀몸 어르신(가명). 주 3회 혈액투석, 투석 후 반복되는 어지럼증·저혈압으로 "
    "병원 이동과 귀가에 동행이 필요함. 통합판정 '중도지원형 노쇠군', "
    "기억력 저하 등 초기 치매 증상.",
    "contact": {"name": "김영수", "phone": "010-3100-2001", "relation": "self"},
    "consent_to_contact": True,
}
PLAN = (
    # (decision, agency, title the agency sees, days until due)
    ("돌봄SOS 병원이동·동행 지원", "gangnam-care-sos", "병원 이동·귀가 동행 (주 3회)", 2),
    ("보건소 건강동행서비스 연계", "gangnam-health", "건강동행서비스 연계", 7),
    ("복지관 식사배달 서비스 제공", "gangnam-welfare", "식사배달 서비스 시작", 3),
    ("치매안심센터 치료비 지원 및 조호 물품 제공", "gangnam-dementia", "치료비 지원·조호 물품", 14),
    ("주거안심종합센터 주거상담소 연계 주거 상향 지원", "gangnam-housing", "주거 상향 상담", 30),
)


def _call(api: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - the URL is the local stack's
        api.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {path}: {error.code} {error.read().decode()}") from None


def conference(case_id: str, today: date) -> dict[str, Any]:
    return {
        "title": f"{today.year}년 의료·돌봄 통합지원회의 (사례 {case_id[-6:].upper()})",
        "held_on": today.isoformat(),
        "place": "구청 3층 대회의실",
        "agencies_present": [agency for _, agency, _, _ in PLAN] + ["gangnam-district"],
        "cases": [
            {
                "case_id": case_id,
                "decisions": [
                    {
                        "text": decision,
                        "activities": [
                            {
                                "agency": agency,
                                "title": title,
                                "due": (today + timedelta(days=days)).isoformat(),
                            }
                        ],
                    }
                    for decision, agency, title, days in PLAN
                ],
            }
        ],
    }


def run(api: str, today: date | None = None) -> int:
    day = today or date.today()
    try:
        token = _call(api, "POST", "/_local/token", {"username": "cs.kim", "role": "cs_admin"})
        case = _call(api, "POST", "/care/cases", CASE, token["token"])
        held = _call(api, "POST", "/care/conferences", conference(case["id"], day), token["token"])
    except RuntimeError as error:
        print(f"simulate care-case: {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        print(
            f"simulate care-case: the local stack does not answer at {api} ({reason}); "
            "start it with `make run`",
            file=sys.stderr,
        )
        return 1
    print(f"case {case['id']} ({case['name']}), conference {held['id']} on {held['held_on']}:")
    for activity in held["discussions"][0]["activities"]:
        print(f"  {activity['due']}  {activity['agency_name']:<24} {activity['title']}")
    for review in held["discussions"][0]["reviews"]:
        print(f"  review at {review['months']} month(s): {review['due_at']}")
    print(
        "The agencies' messages and the person's notice: `sotong outbox`. The case with its "
        f"audit: GET /care/cases/{case['id']} (`sotong token --role cs_admin`); an agency's "
        "view: `sotong token --role agency --organisation gangnam-welfare`, GET /care/activities."
    )
    return 0
