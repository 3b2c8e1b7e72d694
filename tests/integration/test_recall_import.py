"""CSV import of treatments through the real handler and the command line, against moto: good rows
imported with their touchpoints, bad rows by line, nothing twice, dry run, department scoping,
size limit, and the ways a run can be interrupted or raced."""

from __future__ import annotations

import io
import json
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.notify.model import recipient_key
from sotong.recall import importer
from sotong.recall import repository as repo
from sotong.recall.model import patient_id
from sotong.recall.records import Touchpoint
from sotong_local.cli import main as cli
from tests.integration.api import ADMIN, DENTAL, DESK, call

KST = ZoneInfo("Asia/Seoul")
DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "treatments_sample.csv"
DEMO = Path(__file__).resolve().parents[2] / "hospitals" / "demo.yaml"
BAD_LINES = {
    11: ("tag", "unknown treatment tag 'whitening'"),
    12: ("phone", "'010-123-45' is not a Korean phone number"),
    13: ("date", "'2026-13-05' is not a valid date"),
    14: ("name", "is empty (required)"),
    15: ("marketing", "'몰라' is not a yes/no value"),
}


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    return aws


def post(data: bytes, claims: dict[str, str] = ADMIN, query: dict[str, str] | None = None) -> Any:
    return call(
        "POST",
        "/imports/treatments",
        raw=data,
        claims=claims,
        headers={"Content-Type": "text/csv; charset=utf-8"},
        query=query,
    )


def patients(hospital: HospitalConfig, data: bytes = b"") -> list[str]:
    parsed = importer.parse(data or SAMPLE.read_bytes(), hospital)
    return sorted({row.patient_id for row in parsed.rows.values()})


def stored(pids: list[str]) -> dict[str, list[str]]:
    """Every item of each patient's partition (a Query each, never a Scan)."""
    return {pid: sorted(item["sk"] for item in repo.items_of(pid)) for pid in pids}


def test_sample_imports_good_rows_with_their_touchpoints(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    answer = post(SAMPLE.read_bytes())
    assert answer.status == 200, answer.body
    report = answer.body
    assert (report["rows"], report["imported"], report["bad"]) == (21, 16, 5)
    assert report["already_imported"] == 0
    assert report["complete"] is True
    assert report["patients_created"] == 15  # C-10021 has two treatments
    assert {e["line"]: e["field"] for e in report["errors"]} == {
        line: field for line, (field, _) in BAD_LINES.items()
    }
    for error in report["errors"]:
        field, problem = BAD_LINES[error["line"]]
        assert problem in error["problem"]
        assert error["message"].startswith(f"line {error['line']}: {field} (")
    # the patient with two rows: both treatments, every step of both plans, the latest per tag
    pid = patient_id("demo", "C-10021", "+821023456781")
    patient = repo.DynamoPatientRepository().patient(pid)
    assert patient is not None
    assert patient.name == "김서연"
    assert patient.email == "seoyeon.kim@example.com"
    assert patient.consents == {"contact": True, "marketing": True, "night": False}
    assert patient.last_treatment == {"implant_surgery": "2026-11-25", "scaling": "2026-05-12"}
    items = list(repo.items_of(pid))
    treatments = [i for i in items if i["sk"].startswith("TRT#")]
    assert sorted(t["tag"] for t in treatments) == ["implant_surgery", "scaling"]
    assert {t["recorded_by"] for t in treatments} == {"cs.kim"}
    assert {t["source"] for t in treatments} == {"csv_import"}
    touchpoints = call("GET", f"/patients/{pid}/touchpoints", claims=ADMIN).body["touchpoints"]
    steps = {(t["tag"], t["step"]): t["status"] for t in touchpoints}
    assert steps == {
        ("implant_surgery", "precautions"): "planned",  # 11-24 18:00, tomorrow
        ("implant_surgery", "aftercare"): "planned",
        ("implant_surgery", "feedback"): "planned",
        ("implant_surgery", "recall"): "planned",
        ("scaling", "aftercare"): "skipped",  # May: long past when imported
        ("scaling", "recall"): "skipped",
        ("scaling", "next_step"): "planned",  # +12 months
    }
    planned = sum(1 for i in items if i["sk"].startswith("TP#") and i["status"] == "planned")
    assert planned == 5
    # the dispatcher finds them on its due index like any recorded treatment's
    assert all("gsi2pk" in i for i in items if i.get("status") == "planned")
    # a Korean tag name in the file (스케일링, 발치, 임플란트 식립) is the tag's id when stored
    other = patient_id("demo", "C-10023", "+821045678123")
    assert [i["tag"] for i in repo.items_of(other, "TRT#")] == ["scaling"]


def test_importing_the_same_file_again_creates_nothing(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    data = SAMPLE.read_bytes()
    first = post(data).body
    pids = patients(hospital)
    before = stored(pids)
    assert sum(len(v) for v in before.values()) == 15 + 16 + 49
    again = post(data).body
    assert (again["imported"], again["already_imported"], again["bad"]) == (0, 16, 5)
    assert again["patients_created"] == again["patients_updated"] == 0
    assert set(again["requests"]) == {"BatchGetItem"}, "a re-import only reads"
    assert stored(pids) == before
    # the same rows in another encoding are the same treatments
    for variant in ("treatments_sample_bom.csv", "treatments_sample_cp949.csv"):
        report = post((DATA / variant).read_bytes()).body
        assert (report["imported"], report["already_imported"]) == (0, 16), variant
        assert report["errors"] == first["errors"]
    assert stored(pids) == before


@pytest.mark.parametrize(
    ("variant", "encoding"),
    [("treatments_sample_bom.csv", "utf-8-sig"), ("treatments_sample_cp949.csv", "cp949")],
)
def test_bom_and_cp949_files_import_alike(env: dict[str, str], variant: str, encoding: str) -> None:
    data = (DATA / variant).read_bytes()
    if encoding == "cp949":
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # API Gateway hands such a body over base64-encoded
    report = post(data).body
    assert report["encoding"] == encoding
    assert (report["imported"], report["bad"]) == (16, 5)
    assert [e["line"] for e in report["errors"]] == sorted(BAD_LINES)


def test_dry_run_checks_every_row_and_writes_nothing(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    answer = post(SAMPLE.read_bytes(), query={"dry_run": "true"})
    assert answer.status == 200, answer.body
    report = answer.body
    assert report["dry_run"] is True
    assert (report["would_import"], report["imported"], report["bad"]) == (16, 0, 5)
    assert report["patients_created"] == 15
    assert report["touchpoints_planned"] + report["touchpoints_skipped"] == 49
    assert set(report["requests"]) == {"BatchGetItem"}
    assert all(items == [] for items in stored(patients(hospital)).values())
    assert post(SAMPLE.read_bytes()).body["imported"] == 16


def test_department_staff_import_their_own_tags_only(env: dict[str, str]) -> None:
    report = post(SAMPLE.read_bytes(), claims=DENTAL).body
    scoped = {
        e["line"]: e["problem"] for e in report["errors"] if "belongs to department" in e["problem"]
    }
    # botox and laser_toning are dermatology's (lines 13 and 15 are bad for other reasons too)
    assert sorted(scoped) == [5, 6, 13, 15, 18, 20]
    assert scoped[5] == "'botox' belongs to department 'dermatology', not yours"
    assert report["imported"] == 16 - 4
    assert report["bad"] == 5 + 4
    desk = post(SAMPLE.read_bytes(), claims=DESK)
    assert desk.status == 403  # reception records no treatments
    assert desk.body["allowed_roles"] == ["cs_admin", "department_staff"]


def test_a_body_over_5_mb_is_refused_naming_the_limit_and_the_cli(env: dict[str, str]) -> None:
    header = SAMPLE.read_bytes().split(b"\n", 1)[0] + b"\n"
    row = "C-1,김서연,010-2345-6781,,scaling,2026-11-20,N,N,".encode() + b"x" * 200 + b"\n"
    data = header + row * (5 * 2**20 // len(row) + 1)
    answer = post(data)
    assert answer.status == 413
    assert answer.body["error"] == "payload_too_large"
    assert "5 MB" in answer.body["message"]
    assert "sotong import-treatments" in answer.body["message"]


def test_content_types(env: dict[str, str]) -> None:
    json_body = call("POST", "/imports/treatments", {"rows": []}, claims=ADMIN)
    assert json_body.status == 415
    assert json_body.body["message"] == "header.content-type: send text/csv"
    # JSON stays the only body every other route takes
    other = call(
        "POST",
        "/patients",
        raw=b"a,b\n1,2\n",
        claims=ADMIN,
        headers={"Content-Type": "text/csv"},
    )
    assert other.status == 415
    assert other.body["message"] == "header.content-type: send application/json"


def test_header_problems_are_one_clear_error(env: dict[str, str]) -> None:
    unknown = post("차트번호,환자명,휴대폰,시술,시술일,주소\n".encode())
    assert unknown.status == 422
    assert unknown.body["error"] == "invalid_csv"
    assert unknown.body["message"].startswith("line 1: unknown column(s) '주소'; known columns")
    assert unknown.body["unknown_columns"] == ["주소"]
    missing = post("환자명,휴대폰,시술\n홍길동,010-1234-5678,scaling\n".encode())
    assert missing.status == 422
    assert missing.body["missing_columns"] == ["date"]
    assert "date (시술일)" in missing.body["message"]
    excel = post(b"PK\x03\x04" + b"\x00" * 100)
    assert excel.status == 422
    assert "Excel workbook" in excel.body["message"]


def test_a_lost_claim_or_a_patient_registered_meanwhile_writes_nothing_twice(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = SAMPLE.read_bytes()
    assert post(data).body["imported"] == 16
    pids = patients(hospital)
    before = stored(pids)
    # Another import got there between this run's reads and its writes: this one read nothing
    # as existing, so each patient write meets a patient and each claim a treatment.
    real = importer.Importer._patients
    reads: list[set[str]] = []

    def first_read_misses(self: importer.Importer, pids: set[str]) -> dict[str, Any]:
        reads.append(pids)
        return {} if len(reads) == 1 else real(self, pids)

    monkeypatch.setattr(importer.Importer, "_existing", lambda self, rows: set())
    monkeypatch.setattr(importer.Importer, "_patients", first_read_misses)
    report = importer.import_treatments(hospital, data, by="racer")
    assert (report.imported, report.already_imported) == (0, 16)
    assert (report.patients_created, report.touchpoints_planned) == (0, 0)
    assert len(reads) == 1 + 15, "each patient read again once its Put met them"
    assert stored(pids) == before
    treatment = next(i for i in repo.items_of(pids[0], "TRT#"))
    assert treatment["recorded_by"] == "cs.kim"


def test_a_run_cut_short_before_its_touchpoints_is_completed_by_the_next(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = SAMPLE.read_bytes()
    # the process dies after the claims, before the touchpoints' batch
    with monkeypatch.context() as patched:
        patched.setattr(repo, "write_all", lambda items: 0)
        assert importer.import_treatments(hospital, data, by="desk").imported == 16
    pid = patient_id("demo", "C-10021", "+821023456781")
    assert list(repo.items_of(pid, "TP#")) == []
    report = importer.import_treatments(hospital, data, by="desk")
    assert (report.imported, report.already_imported, report.touchpoints_repaired) == (0, 16, 49)
    assert len(list(repo.items_of(pid, "TP#"))) == 7
    # a touchpoint moved on since is not written again; only a missing one is
    queued = next(i for i in repo.items_of(pid, "TP#") if i["status"] == "planned")
    planned = Touchpoint.from_item(queued)
    assert repo.DynamoPatientRepository().move_touchpoint(planned, planned.queue(clock.now()))
    gone = next(i for i in repo.items_of(pid, "TP#") if i["sk"] != queued["sk"])
    repo.delete_all([{"pk": {"S": gone["pk"]}, "sk": {"S": gone["sk"]}}])
    again = importer.import_treatments(hospital, data, by="desk")
    assert again.touchpoints_repaired == 1
    statuses = {i["sk"]: i["status"] for i in repo.items_of(pid, "TP#")}
    assert statuses[queued["sk"]] == "queued"
    assert statuses[gone["sk"]] == gone["status"]


def test_known_patients_keep_what_the_file_does_not_say(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    registered = call(
        "POST",
        "/patients",
        {
            "name": "김서연",
            "phone": "010-2345-6781",
            "chart_no": "C-10021",
            "email": "old@example.com",
            "consents": {"contact": False, "marketing": False},
        },
        claims=ADMIN,
    )
    assert registered.status == 201
    pid = registered.body["id"]
    call(
        "POST",
        f"/patients/{pid}/treatments",
        {"tag": "scaling", "date": "2026-10-01"},
        claims=ADMIN,
    )
    csv_text = (
        "등록번호,성명,전화번호,시술코드,진료일,광고동의\n"
        "C-10021,김서연,010-2345-6781,스케일링,2026-09-01,Y\n"
        "C-10021,김서연,010-2345-6781,implant_surgery,2026-11-25,\n"
    )
    report = post(csv_text.encode()).body
    assert (report["imported"], report["patients_created"], report["patients_updated"]) == (2, 0, 1)
    patient = repo.DynamoPatientRepository().patient(pid)
    assert patient is not None
    # the first row's Y holds (the second row's empty cell says nothing); no column, no change
    assert patient.consents == {"contact": False, "marketing": True, "night": False}
    assert patient.email == "old@example.com"
    # an earlier scaling does not move the later one recorded through the API
    assert patient.last_treatment == {"scaling": "2026-10-01", "implant_surgery": "2026-11-25"}
    changed = post(
        (csv_text.splitlines()[0] + "\nC-10021,김서연,010-2345-6782,보톡스,2026-11-20,Y\n").encode()
    ).body
    assert changed["patients_updated"] == 1
    patient = repo.DynamoPatientRepository().patient(pid)
    assert patient is not None
    assert patient.phone == "+821023456782"
    assert patient.consents == {"contact": False, "marketing": True, "night": False}
    phone_key = recipient_key("demo", "+821023456782")
    assert repo.DynamoPatientRepository().patient_by_phone(phone_key) is not None


def test_a_call_near_its_time_limit_stops_between_chunks_and_the_next_completes_it(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    data = SAMPLE.read_bytes()
    first = importer.import_treatments(hospital, data, by="x", chunk_rows=5, time_left=lambda: 0.0)
    assert first.complete is False
    assert first.stopped_after_line == 6
    assert first.as_dict()["message"].startswith("stopped after line 6")
    assert first.imported == 5
    assert len(first.errors) == 5, "every row is checked even when the import stops early"
    second = importer.import_treatments(hospital, data, by="x", chunk_rows=5)
    assert (second.imported, second.already_imported) == (11, 5)


# --- the command line ---------------------------------------------------------------------------


def test_cli_imports_with_progress_and_exits_1_for_bad_rows(
    env: dict[str, str],
    hospital: HospitalConfig,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    args = ["import-treatments", str(SAMPLE), "--hospital", str(DEMO)]
    assert cli([*args, "--dry-run"]) == 1
    out = capsys.readouterr()
    assert "16 would be imported" in out.out
    assert all(items == [] for items in stored(patients(hospital)).values())
    assert cli(args) == 1
    out = capsys.readouterr()
    assert "importing: 21/21 rows (100%)" in out.err
    assert "21 rows (utf-8): 16 imported, 0 already imported, 5 bad" in out.out
    assert "line 12: phone (휴대폰): '010-123-45' is not a Korean phone number" in out.out
    treatment = next(iter(repo.items_of(patients(hospital)[0], "TRT#")))
    assert treatment["recorded_by"].startswith("import:")
    good = SAMPLE.read_text(encoding="utf-8").splitlines()
    clean = "\n".join(line for n, line in enumerate(good, start=1) if n not in BAD_LINES)
    path = tmp_path / "clean.csv"
    path.write_text(clean, encoding="utf-8")
    assert cli(["import-treatments", str(path), "--hospital", str(DEMO)]) == 0
    assert "0 imported, 16 already imported, 0 bad" in capsys.readouterr().out


def test_cli_progress_on_a_terminal_rewrites_one_line() -> None:
    from sotong_local.cli import _Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = _Progress(stream)
    for done in (500, 1000, 1500):
        progress(done, 1500)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 3
    assert text.count("\n") == 1
    assert "1,500/1,500 rows (100%)" in text
    piped = io.StringIO()
    progress = _Progress(piped)
    for done in range(100, 1001, 100):
        progress(done, 1000)
    assert len(piped.getvalue().splitlines()) == 10


def test_cli_explains_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("SOTONG_TABLE", raising=False)
    monkeypatch.setenv("SOTONG_LOCAL_API", "http://127.0.0.1:9")  # and no local stack runs
    assert cli(["import-treatments", str(SAMPLE), "--hospital", str(DEMO)]) == 2
    assert "SOTONG_TABLE" in capsys.readouterr().err
    assert cli(["import-treatments", str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err
    monkeypatch.setenv("SOTONG_TABLE", "x")
    bad = tmp_path / "bad.csv"
    bad.write_text("이름,전화,시술,날짜\n", encoding="utf-8")
    assert cli(["import-treatments", str(bad), "--hospital", str(DEMO)]) == 2
    assert "unknown column(s) '전화'" in capsys.readouterr().err


def test_cli_with_api_posts_utf8_and_sends_again_until_complete(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--api` against the real handler (urlopen routed to it); the function is made to run
    out of time one chunk (of 5 rows) further each call, as a slow one near its limit would."""
    sent: list[dict[str, Any]] = []
    real = importer.import_treatments

    def short(*args: Any, **kwargs: Any) -> importer.ImportReport:
        chunks = iter(range(len(sent)))
        left = lambda: 0.0 if next(chunks, None) is None else 60.0  # noqa: E731
        return real(*args, **{**kwargs, "chunk_rows": 5, "time_left": left})

    monkeypatch.setattr(importer, "import_treatments", short)

    class Reply(io.BytesIO):
        status = 200

        def __enter__(self) -> Reply:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def urlopen(request: urllib.request.Request, timeout: float) -> Reply:
        headers = {k.lower(): v for k, v in request.header_items()}
        sent.append(headers)
        assert request.full_url.startswith("http://sotong.test/v1/imports/treatments")
        body = request.data
        assert isinstance(body, bytes)
        answer = call(
            "POST",
            "/imports/treatments",
            raw=body,
            claims=ADMIN if headers.get("authorization") == "Bearer T" else None,
            headers={"Content-Type": headers["content-type"]},
        )
        assert answer.status == 200, answer.body
        return Reply(json.dumps(answer.body).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    cp949 = DATA / "treatments_sample_cp949.csv"
    code = cli(["import-treatments", str(cp949), "--api", "http://sotong.test/v1", "--token", "T"])
    assert code == 1
    out = capsys.readouterr()
    assert len(sent) == 4  # 5 chunks of 5 rows: 2, 3, 4, then all 5 chunks in a call
    assert all(h["content-type"] == "text/csv; charset=utf-8" for h in sent)
    assert out.err.count("sending the file again") == 3
    assert "(cp949, sent as utf-8): 16 imported, 0 already imported, 5 bad" in out.out


def test_report_caps_the_errors_it_lists(hospital: HospitalConfig) -> None:
    rows = "".join(f"C-{n},홍길동,010-1234-5678,unknown,2026-11-20\n" for n in range(250))
    parsed = importer.parse("차트번호,이름,전화번호,시술,날짜\n" + rows, hospital)
    report = importer.Importer(hospital, by="x").report
    report.errors = parsed.errors
    shown = report.as_dict(max_errors=200)
    assert (len(shown["errors"]), shown["errors_total"], shown["bad"]) == (200, 250, 250)
    assert shown["errors_truncated"] is True
    assert "... 50 more" in importer.render(shown)
