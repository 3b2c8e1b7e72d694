"""Reading EMR CSV exports: encodings, header aliases, cell formats, line numbers (no AWS)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.recall.importer import CsvError, Parsed, decode, parse, parse_consent, parse_date

HEADER = "차트번호,환자명,휴대폰,시술,시술일"


@pytest.fixture(autouse=True)
def fixed_clock() -> Iterator[None]:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Seoul")))
    yield
    clock.fix(None)


@pytest.fixture(scope="module")
def hospital() -> HospitalConfig:
    return load_hospital()


def read(text: str, hospital: HospitalConfig, departments: set[str] | None = None) -> Parsed:
    return parse(text.encode("utf-8"), hospital, departments)


def messages(parsed: Parsed) -> list[str]:
    return [e.render() for e in parsed.errors]


def test_encodings_are_found_utf8_first() -> None:
    text = f"{HEADER}\nC-1,홍길동,010-1234-5678,스케일링,2026-11-20\n"
    assert decode(text.encode("utf-8")) == (text, "utf-8")
    assert decode(codecs.BOM_UTF8 + text.encode("utf-8")) == (text, "utf-8-sig")
    assert decode(text.encode("cp949")) == (text, "cp949")
    assert decode(text.encode("euc-kr")) == (text, "cp949")
    assert decode(text.encode("utf-16")) == (text, "utf-16")
    # 똠 and 햏 are outside EUC-KR's 2,350 syllables: CP949 has them
    assert decode("똠햏".encode("cp949"))[1] == "cp949"
    with pytest.raises(CsvError, match=r"^line 2: the file is neither UTF-8 nor CP949"):
        decode(b"a,b\n\xff\xfe\xff\n")
    with pytest.raises(CsvError, match=r"^line 1: the file is neither"):
        decode(codecs.BOM_UTF8 + b"\xff\xfe,a\n")
    with pytest.raises(CsvError, match="Excel workbook"):
        decode(b"PK\x03\x04rest")


@pytest.mark.parametrize(
    "header",
    [
        "chart_no,name,phone,tag,date",
        "Chart No,NAME,Phone,Treatment,Date",
        "등록번호,성명,휴대전화,처치,진료일",
        "환자번호, 이름 ,연락처,시술코드,치료일",
        "차트 번호,환자명,전화번호,태그,날짜",
    ],
)
def test_header_aliases_ignore_case_spaces_and_underscores(
    header: str, hospital: HospitalConfig
) -> None:
    parsed = read(f"{header}\nC-1,홍길동,010-1234-5678,scaling,2026-11-20\n", hospital)
    assert parsed.errors == []
    row = parsed.rows[2]
    assert (row.registration.chart_no, row.tag.id, row.record.date) == (
        "C-1",
        "scaling",
        date(2026, 11, 20),
    )


def test_header_problems_reject_the_file(hospital: HospitalConfig) -> None:
    with pytest.raises(CsvError, match=r"^line 1: unknown column\(s\) '주소', 'memo2'"):
        read(f"{HEADER},주소,memo2\n", hospital)
    with pytest.raises(CsvError) as missing:
        read("차트번호,환자명\nC-1,홍길동\n", hospital)
    assert missing.value.details["missing_columns"] == ["phone", "tag", "date"]
    assert "phone (전화번호), tag (시술), date (시술일)" in missing.value.message
    with pytest.raises(CsvError, match="columns '휴대폰' and '연락처' both mean phone"):
        read(f"{HEADER},연락처\n", hospital)
    with pytest.raises(CsvError, match="the file is empty"):
        read("\n\n", hospital)


def test_empty_trailing_columns_and_other_delimiters_are_fine(hospital: HospitalConfig) -> None:
    parsed = read(f"{HEADER},,\nC-1,홍길동,010-1234-5678,scaling,2026-11-20,,\n", hospital)
    assert (parsed.errors, len(parsed.rows)) == ([], 1)
    tabs = read(
        HEADER.replace(",", "\t") + "\nC-1\t홍길동\t010-1234-5678\t발치\t20261120\n", hospital
    )
    assert tabs.rows[2].tag.id == "extraction"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("2026.11.20", date(2026, 11, 20)),
        ("2026. 11. 20.", date(2026, 11, 20)),
        ("2026/1/5", date(2026, 1, 5)),
        ("20261120", date(2026, 11, 20)),
        ("2026-11-20 14:30", date(2026, 11, 20)),
        ("2026-11-20 14:30:05", date(2026, 11, 20)),
    ],
)
def test_date_formats(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["2026-02-30", "2026-11", "20/11/2026", "2026-11/20", "어제"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(ValueError, match=f"'{text}' is not a"):
        parse_date(text)


def test_consent_values() -> None:
    for yes in ("Y", "y", "예", "네", "동의", "1", "true", "TRUE", "O"):
        assert parse_consent(yes) is True, yes
    for no in ("N", "아니오", "아니요", "미동의", "거부", "0", "false", "X"):
        assert parse_consent(no) is False, no
    with pytest.raises(ValueError, match="'아마' is not a yes/no value"):
        parse_consent("아마")


def test_row_problems_name_the_line_and_the_column(hospital: HospitalConfig) -> None:
    text = (
        f"{HEADER},이메일,연락동의\n"
        "C-1,홍길동,010-1234-5678,scaling,2026-11-20,,\n"
        '"C-2","김\n철수",010-1234-5679,scaling,2026-11-20,,\n'  # a quoted line break
        "\n"
        "C-3,,,,,,\n"
        "C-4,이영희,010-1234-5670,scaling,2028-01-01,not-an-email,몰라\n"
        "C-5,박민수,010-1234-5671,scaling,2026-11-20,,,extra\n"
        "C-6,최지우,010-1234-5672,scaling,2026-11-20\n"
    )
    parsed = read(text, hospital)
    assert messages(parsed) == [
        "line 6: name (환자명): is empty (required)",
        "line 6: phone (휴대폰): is empty (required)",
        "line 6: tag (시술): is empty (required)",
        "line 6: date (시술일): is empty (required)",
        "line 7: date (시술일): 2028-01-01 is after the treatment dates this system takes "
        "(2006-11-23 to 2027-11-24): a typo?",
        "line 7: contact (연락동의): '몰라' is not a yes/no value "
        "(Y/N, 예/아니오, 동의/미동의, 1/0)",
        "line 7: email (이메일): 'not-an-email' is not an e-mail address",
        "line 8: row: 8 values but the header has 7 columns "
        '(a comma inside a value needs "quotes")',
    ]
    assert sorted(parsed.rows) == [2, 3, 9]  # short rows are fine: missing cells are empty
    assert parsed.lines == [2, 3, 6, 7, 8, 9]
    assert parsed.rows[3].registration.name == "김 철수"  # a name is one line


def test_english_headers_report_the_field_alone(hospital: HospitalConfig) -> None:
    parsed = read("name,phone,tag,date\n홍길동,010-1234,laser,2026-11-20\n", hospital)
    assert messages(parsed) == [
        "line 2: tag: unknown treatment tag 'laser'; known: implant_surgery, scaling, "
        "extraction, botox, laser_toning, chemotherapy",
        "line 2: phone: '010-1234' is not a Korean phone number like 010-1234-5678",
    ]


def test_tags_by_id_or_korean_name_and_department_scoping(hospital: HospitalConfig) -> None:
    text = (
        f"{HEADER}\n"
        "C-1,홍길동,010-1234-5678,Implant_Surgery,2026-11-20\n"
        "C-2,홍길동,010-1234-5678,레이저토닝,2026-11-20\n"
        "C-3,홍길동,010-1234-5678,레이저 토닝,2026-11-20\n"
    )
    parsed = read(text, hospital, departments={"dental"})
    assert parsed.rows[2].tag.id == "implant_surgery"
    assert messages(parsed) == [
        "line 3: tag (시술): 'laser_toning' belongs to department 'dermatology', not yours",
        "line 4: tag (시술): 'laser_toning' belongs to department 'dermatology', not yours",
    ]


def test_the_same_treatment_twice_in_a_file_is_one(hospital: HospitalConfig) -> None:
    text = (
        f"{HEADER},마케팅동의\n"
        "C-1,홍길동,010-1234-5678,scaling,2026-11-20,Y\n"
        "C-1,홍길동,010 1234 5678,스케일링,2026.11.20,N\n"
        "C-1,홍길동,010-1234-5678,scaling,2026-11-21,N\n"
    )
    parsed = read(text, hospital)
    assert (sorted(parsed.rows), parsed.duplicates) == ([2, 4], 1)
    one, other = parsed.rows[2], parsed.rows[4]
    assert one.patient_id == other.patient_id
    assert one.treatment_id != other.treatment_id
    assert one.given == frozenset({"marketing"})
    # without a chart number the phone is the patient
    bare = read("이름,전화번호,시술,날짜\n홍길동,010-1234-5678,scaling,2026-11-20\n", hospital)
    assert bare.rows[2].patient_id != one.patient_id


def test_the_bench_file_is_deterministic_and_valid(hospital: HospitalConfig) -> None:
    from bench.recall_import import generate_csv

    data = generate_csv(300)
    assert data == generate_csv(300)
    assert data.startswith(codecs.BOM_UTF8)
    parsed = parse(data, hospital)
    assert parsed.errors == []
    assert len(parsed.lines) == 300
    assert len(parsed.rows) + parsed.duplicates == 300
    assert len({row.patient_id for row in parsed.rows.values()}) == 210


def test_the_bench_suite_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Structure only, on 40 rows (timings depend on the machine)."""
    import os

    import boto3

    from bench import Options
    from bench.recall_import import recall_import

    saved = dict(os.environ)
    monkeypatch.setenv("SOTONG_BENCH_IMPORT_ROWS", "40")
    try:
        rows = recall_import(Options(runs=1, warmup=0))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        boto3.DEFAULT_SESSION = None
    names = [row.name for row in rows]
    assert names[0] == "import 40 rows: time"
    assert "import 10,000 rows: time (extrapolated)" in names
    by_name = {row.name: row for row in rows}
    requests = by_name["import: AWS requests"]
    assert requests.value is not None
    assert requests.stats["total"] == round(requests.value * 40)
    assert "0 writes" in by_name["re-import: AWS requests"].note
    baseline = by_name["baseline row by row (register + record_treatment): requests"].value
    assert baseline is not None
    assert baseline > requests.value
