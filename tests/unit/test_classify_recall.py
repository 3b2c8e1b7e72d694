"""The rule classifier leans towards recall: harm families, stems, typos, and what stays quiet.

A critical complaint alerts a person at once. A false alarm costs a staff member a look; a missed
one can cost a patient. So the critical lists are stems by family and combinations, not phrases
copied from the labelled set; these tests pin each family with wordings the lists do not spell
out, and pin the look-alikes that must not raise an alarm.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sotong.complaints import rulebook
from sotong.complaints.classification import Classification, Classifier
from sotong.complaints.classify import build_classifier
from sotong.config import HospitalConfig, load_hospital_file

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hospitals" / "demo.yaml"
LABELLED = ROOT / "tests" / "data" / "complaints_labelled.jsonl"


@pytest.fixture(scope="module")
def demo() -> HospitalConfig:
    return load_hospital_file(DEMO)


@pytest.fixture(scope="module")
def rules(demo: HospitalConfig) -> Classifier:
    """The classifier intake runs: the rules and the learned model together."""
    return build_classifier(demo)


# Missed by the rules before the re-balance (held-out round, seed 004): each must now alert.
PREVIOUSLY_MISSED = [
    (
        "할머니가 휠체어에서 일어나시다가 앞으로 고꾸라지셨어요. 브레이크가 안 잠겨 있었대요",
        "safety",
    ),
    ("간호사가 제 동생 링거에 엄마 이름이 적힌 수액을 달았다가 제가 말해서 바꿨어요", "safety"),
    ("접수 직원이 전화로 제 HIV 검사 결과를 제 남편한테 말해 버렸습니다", "privacy"),
    ("병원 직원이 제 진료 기록을 몰래 열람했다는 걸 알게 됐어요", "privacy"),
    ("남자 직원이 탈의실 커튼을 확 열고 들어왔어요", "privacy"),
    ("수술 동의서에 적힌 수술 부위와 실제로 소독한 부위가 달랐어요", "safety"),
    ("주사실에서 쓰던 솜을 다시 쓰는 걸 봤어요", "safety"),
]


@pytest.mark.parametrize(("text", "category"), PREVIOUSLY_MISSED)
def test_previously_missed_examples_alert(rules: Classifier, text: str, category: str) -> None:
    result = rules.classify(text)
    assert (result.urgency, result.category) == ("critical", category), result
    assert result.matched


FAMILIES = {
    "body_and_injury": [
        "아버지가 보행기 밀다가 꼬꾸라지셔서 코에서 피가 났어요",
        "할머니가 바닥에 털썩 주저앉으시더니 못 일어나세요",
        "아이가 진료대에서 굴러 떨어졌어요",
        "엄마 팔에 시퍼렇게 멍이 들어 있었어요",
        "진료 받고 나오다 계단에서 발목을 접질렸어요",
        "마취 깨고 나서 아이가 계속 축 처지고 숨을 헐떡여요",
        "수혈 받는 중에 오한이 나고 온몸이 벌벌 떨려요",
        "약 먹고 나서 계속 어지럽고 토해요",
        "입원 중에 폐렴에 걸렸어요",
        "아버지가 입원 중에 돌아가셨는데 아무 설명이 없어요",
    ],
    "infection": [
        "제왕절개 수술 부위에서 냄새나는 진물이 나와요",
        "레이저 제모 받은 겨드랑이가 시뻘겋고 고름이 잡혀요",
        "주사 맞은 자리가 덧나서 점점 부어요",
    ],
    "allergy_and_breathing": [
        "조영제 맞는데 온몸이 가렵고 목이 막히는 느낌이었어요",
        "항생제 먹고 입 주변이 퉁퉁 부었어요",
        "엄마가 식사하시다 사레가 들려서 얼굴이 파래졌어요",
    ],
    "bleeding": [
        "출산 후 하혈이 멈추질 않는데 원래 그렇대요",
        "치료 후에 아이 입안이 헐고 피가 섞인 침이 나와요",
    ],
    "wrong_patient_or_drug_or_dose": [
        "간호사님이 저희 아이한테 다른 아이 해열제를 먹였어요",
        "애기 접종 스티커에 다른 애기 이름이 써 있어요",
        "주사 놓기 전에 등록번호 확인도 안 하시더라구요",
        "인슐린을 두번 놔주셨대요",
        "혈압약 용량이 바뀌었는데 아무 설명이 없었어요",
        "아이 해열제를 어른 양으로 처방받았어요",
        "처방전이랑 약국에서 받은 약 개수가 달라요",
        "할머니 틀니를 다른 환자 거랑 바꿔 끼워드렸대요",
        "아침약 봉지에 저녁약이 들어있어요",
        "간호사가 엄마한테 다른 환자 혈압약을 줬어요",
    ],
    "wrong_site": [
        "수술 부위 표시를 반대쪽 다리에 해놨더라구요",
        "동의서엔 왼쪽 눈인데 오른쪽 눈에 마취하려 했어요",
        "치과에서 제 이 대신 옆 이를 갈아버렸어요",
    ],
    "hygiene_and_sterility": [
        "치과에서 기구를 바닥에 떨어뜨렸는데 그냥 주워서 쓰시더라구요",
        "주사실 선생님이 알코올 솜 하나로 여러 사람 닦더라구요",
        "내시경을 세척도 안 하고 바로 쓰는 것 같았어요",
        "한 주사기로 약을 뽑고 그대로 다른 약병에 꽂더라구요",
        "소독솜 통에 날파리가 들어가 있었어요",
        "사용한 주사 바늘이 병실 바닥에 떨어져 있었어요",
    ],
    "unattended_deterioration": [
        "새벽에 할머니가 숨쉬기 힘들어 하셨는데 여러 번 불러도 아무도 안 왔어요",
        "할아버지가 섬망으로 소리 지르시는데 몇 시간째 아무도 안 봐요",
        "엄마가 아프다고 우시는데 호출벨을 눌러도 안 와요",
    ],
}
PRIVACY = [
    "제 차트를 다른 과 직원이 몰래 들여다봤다고 들었어요",
    "병원 직원이 제 딸 검사 결과를 친척들한테 떠벌렸어요",
    "원무과 직원이 제 진단서를 전 남편한테 발급해줬어요",
    "병원 직원이 제가 입원한 걸 직장 상사한테 말했어요",
    "치과 위생사가 제 입안 사진을 개인 인스타 스토리에 올렸어요",
    "대기실 모니터에 환자 이름이랑 시술명이 다 떠요",
    "진료실 밖에서 다 들리게 제 병명을 말씀하셨어요",
    "유방 검사하는데 문이 반쯤 열려 있어서 복도에서 보였을 거예요",
    "검사 결과지를 대기실 의자에 그냥 두고 가셨어요",
    "환자복 갈아입는데 청소하시는 분이 문을 벌컥 열고 들어오셨어요",
]
VIOLENCE_AND_SELF_HARM = [
    "옆 병상 보호자가 술 먹고 행패를 부렸어요",
    "의사가 진찰하면서 불필요하게 가슴을 계속 만졌어요",
    "간병인이 치매 할머니한테 손을 올리는 걸 봤어요",
    "간호사가 엄마를 침대에 묶어놓고 풀어주지도 않아요",
    "직원이 환자한테 폭언을 했어요",
    "아들이 자꾸 베란다 난간에 올라가려고 해요",
    "우울증 진료 중인데 요즘 다 그만두고 싶고 아무것도 의미가 없어요",
    "아내가 어제 아기랑 같이 죽자는 말을 했어요",
]


BROAD_TIER = {
    rule.id
    for rule in rulebook.compose(load_hospital_file(DEMO)).rules
    if rule.harm and rule.urgency == "high"
}


def flagged(result: Classification) -> bool:
    """Critical, or high through a broad harm family: a person looks the same day. The broad
    families say high because two in ten of their hits were not critical; the model raises them
    to critical when the text tells of harm (measured on the labelled sets, see
    docs/tune-the-classifier.md). Most of these examples page outright (the test below)."""
    return result.urgency == "critical" or (
        result.urgency == "high" and bool(BROAD_TIER & set(result.rules))
    )


PINNED = [
    *(text for texts in FAMILIES.values() for text in texts),
    *PRIVACY,
    *VIOLENCE_AND_SELF_HARM,
    *(text for text, _ in PREVIOUSLY_MISSED),
]


def test_most_pinned_examples_page_at_once(rules: Classifier) -> None:
    paged = [t for t in PINNED if rules.classify(t).urgency == "critical"]
    assert len(paged) / len(PINNED) >= 0.85, [t for t in PINNED if t not in paged]


@pytest.mark.parametrize(
    ("family", "text"), [(family, text) for family, texts in FAMILIES.items() for text in texts]
)
def test_safety_families(rules: Classifier, family: str, text: str) -> None:
    result = rules.classify(text)
    assert flagged(result), (family, result)
    assert result.category == "safety", (family, result)


@pytest.mark.parametrize("text", PRIVACY)
def test_privacy_family(rules: Classifier, text: str) -> None:
    result = rules.classify(text)
    assert flagged(result), result
    assert result.category == "privacy", result


@pytest.mark.parametrize("text", VIOLENCE_AND_SELF_HARM)
def test_violence_and_self_harm(rules: Classifier, text: str) -> None:
    assert flagged(rules.classify(text)), text


@pytest.mark.parametrize(
    "text",
    [
        "어머니가 넘어진 걸 아무도 몰랐어요",  # 넘어지 + ㄴ: a stem takes an ending's consonant
        "할아버지가 고꾸라진 채로 계셨어요",
        "아버지가 쓰러진 걸 한참 뒤에 알았어요",
        "아이가 다쳣어요",  # ㅆ typed as ㅅ
        "할머니가 넘어지셧는데 ㅠㅠ",
        "엄마가 미끌어지셨어요",
    ],
)
def test_stems_and_typos(rules: Classifier, text: str) -> None:
    assert rules.classify(text).urgency == "critical", text


def test_typo_folding_keeps_what_staff_see(rules: Classifier) -> None:
    result = rules.classify("아이가 다쳣어요")
    assert "다쳤" in result.matched  # the phrase as the rule writes it, not the folded form


@pytest.mark.parametrize(
    "text",
    [
        "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.",  # 넘었 is time, not a fall
        "대기 시간이 2시간을 넘어서 결국 그냥 돌아왔어요",
        "예약 시간이 30분 넘었는데 아직도 안 불러요",
        "진료비가 지난번보다 10만원 넘게 나왔어요",
        "소독 안내문이 너무 작아요",
        "카드 영수증에 찍힌 금액이 달라요",
        "주차하다 차가 긁혔어요",
        "문의했는데 반응이 없어요",
        "어이가 없어서 말이 안 나와요",
        "카드가 중복으로 결제됐어요",
        "사는 게 바빠서 예약을 못 지켰어요",
        "무단으로 주차한 차 때문에 못 나가요",
        "서류를 다시 쓰는 게 번거로워요",
        "순서가 뒤바뀌었어요",
        "호흡기내과 예약 변경하고 싶어요",
        "탈의실이 너무 좁아요",
        "커튼이 찢어져 있어요 교체해 주세요",
        "남편이 대신 약 받으러 가도 되나요",
        "선생님 덕분에 비염이 많이 좋아졌어요",  # 생니 must not find 선생님
        "검사 결과를 남편이랑 같이 듣고 싶은데 가능한가요",
        "아이가 열이 나서 왔는데 접수에서 30분이나 세워뒀어요",  # why the patient came
        "숨이 차서 왔는데 두 시간 기다렸어요",
        "탈의실 사물함 열쇠가 고장났어요",
    ],
)
def test_look_alikes_stay_quiet(rules: Classifier, text: str) -> None:
    assert rules.classify(text).urgency != "critical", text


@pytest.mark.parametrize(
    ("text", "urgency"),
    [
        ("넘어지지 않게 복도에 손잡이를 달아주세요", "normal"),
        ("입원 중에 간호사님들이 욕창 안 생기게 자세를 바꿔주셨어요", "normal"),
        ("욕창이 생기지 않도록 자주 봐 주세요", "normal"),
        ("수술 잘 끝났어요 걱정했는데 출혈도 거의 없었대요", "normal"),
        ("어머니가 넘어질까 봐 걱정했는데 재활 덕분에 잘 걸으세요", "normal"),  # a worry
        ("넘어질까 봐 손잡아 달라고 했는데 혼자 가시다 넘어지셨어요", "critical"),
        # a precaution does not silence another harm in the same complaint
        ("넘어지지 않게 해 달라고 했는데 결국 넘어지셨어요", "critical"),
        ("감염 예방 교육은 좋았는데 수술 부위에서 고름이 나와요", "critical"),
    ],
)
def test_precautions_and_absences(rules: Classifier, text: str, urgency: str) -> None:
    assert rules.classify(text).urgency == urgency, text


@pytest.mark.parametrize(
    ("text", "urgency"),
    [
        ("호출벨을 눌렀는데 30분 동안 아무도 안 왔어요", "high"),  # unattended: high
        ("호출벨을 눌렀는데 30분 동안 아무도 안 왔어요. 엄마는 숨이 차다고 하셨어요", "flagged"),
        ("치매 있으신 할머니를 복도에 방치했어요", "high"),
        ("아버지가 밤새 끙끙 앓으셨는데 아무도 들여다보지 않았어요", "flagged"),
    ],
)
def test_unattended_is_critical_when_the_patient_is_in_distress(
    rules: Classifier, text: str, urgency: str
) -> None:
    result = rules.classify(text)
    assert flagged(result) if urgency == "flagged" else result.urgency == urgency, result


def test_compliment_about_an_incident_is_still_critical(rules: Classifier) -> None:
    result = rules.classify(
        "7층 간호사님들 정말 감사드려요. 할머니가 화장실에서 미끄러지셨는데 바로 와 주셨어요."
    )
    assert (result.kind, result.category, result.urgency) == ("compliment", "safety", "critical")


def test_critical_buried_in_a_long_story(rules: Classifier) -> None:
    text = (
        "지난 주말 외할머니 입원하셔서 간병했는데요, 밥은 그럭저럭이었고 에어컨이 너무 세서 "
        "추웠어요. 근데 밤에 할머니가 문턱에 걸려서 엎어지셨는데 엑스레이도 안 찍고 그냥 "
        "재우라고 했어요. 수납은 또 왜 그렇게 오래 걸리는지 모르겠네요."
    )
    assert rules.classify(text).urgency == "critical"
