"""Bulk import of treatments from an EMR's CSV export.

Parsing: UTF-8 (with or without BOM) or CP949/EUC-KR, which Korean EMRs and Excel write; Korean or
English headers, matched without regard to case, spaces, `_` or `-`. Every row is checked with the
same models the API uses (`PatientRegistration`, `TreatmentRecord`) and against the hospital's
treatment tags; a bad row is reported as `line N: field: problem` with the line number as it is in
the file (the header is line 1) and the good rows are imported.

Importing, chunk by chunk (`CHUNK_ROWS` rows), every request counted in the report:
1. Read first (BatchGetItem, 100 keys a request, consistent reads): whether each row's treatment
   exists, then the patients of the rows whose treatment is new. Treatment ids are deterministic
   (patient, tag, date), so a row imported before is found and counted "already imported":
   importing the same file again reads, and writes nothing (but touchpoints found missing beside
   an existing treatment, see 4). A row already imported updates nothing, not even the patient.
2. Each patient once per chunk, before their treatments, from what their rows say (in file
   order: a later row wins, an empty cell says nothing): a new one by a conditional Put (as
   `repository.upsert_patient` would store them, with `last_treatment` for their rows); a known
   one by one UpdateItem of only what the file changes (contact, consents given in the file,
   later `last_treatment` dates), guarded by conditions; an unchanged one not at all. A condition
   that fails (someone registered the patient meanwhile) means: read again and plan again.
3. Each treatment by a conditional Put (`repository.put_new`): the claim. Only the run whose
   claim succeeds plans that treatment's touchpoints, so two imports of one file at the same time
   (or the same treatment recorded through the API meanwhile) never write a touchpoint twice;
   a lost claim is counted "already imported". The claimed rows' touchpoints go out together,
   25 to a BatchWriteItem.
4. A run cut short after a claim but before its touchpoints' batch leaves a treatment without
   touchpoints: the next import of the file reads the touchpoint keys of the treatments it finds
   (BatchGetItem) and writes only the missing ones; present touchpoints are never written again
   (a rewritten touchpoint could be sent again).

Why not TransactWriteItems (patient + treatment + touchpoints, atomic, ~0.07 requests a row)?
moto, which the local stack and the tests run on, deep-copies the whole table for every action
of a transaction, so an import grows quadratically there (a 2,000-row file did not finish in ten
minutes). Conditional puts cost one request per row but stay linear everywhere, and consume half
the write units a transaction would.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError

from sotong import clock, consent, dates, store, tombstones
from sotong.config.schema import HospitalConfig, TreatmentTag
from sotong.errors import SotongError
from sotong.notify.model import recipient_key
from sotong.recall.model import (
    Consents,
    PatientRegistration,
    TreatmentRecord,
    patient_id,
    treatment_id,
)
from sotong.recall.records import Patient, Touchpoint, Treatment
from sotong.recall.repository import (
    DynamoPatientRepository,
    PatientRepository,
    item_key,
    patient_item,
    patient_key,
    phone_index,
    strip,
    touchpoint_item,
    treatment_key,
    treatment_of_key,
)
from sotong.recall.service import RecallDesk

MAX_API_BYTES = 5 * 1024 * 1024
CHUNK_ROWS = 250
STOP_MARGIN_S = 2.0  # left for answering, beside the longest chunk so far
MAX_KEYS = 100  # per BatchGetItem
MAX_FUTURE = timedelta(days=dates.TREATMENT_DAYS_AHEAD)  # the window: sotong.dates
MAX_ATTEMPTS = 5
SOURCE = "csv_import"

Progress = Callable[[int, int], None]
"""called with (rows done, rows in the file) after each chunk"""


class CsvError(SotongError):
    """The file as a whole cannot be read: encoding, header. No row is imported."""

    status = 422
    code = "invalid_csv"


class TooLarge(SotongError):
    status = 413
    code = "payload_too_large"


# --- columns ------------------------------------------------------------------------------------

REQUIRED = ("name", "phone", "tag", "date")
ALIASES: dict[str, tuple[str, ...]] = {
    "chart_no": ("chart_no", "chart", "차트번호", "환자번호", "등록번호"),
    "name": ("name", "이름", "성명", "환자명"),
    "phone": ("phone", "mobile", "전화번호", "휴대폰", "휴대전화", "핸드폰", "연락처"),
    "email": ("email", "이메일"),
    "tag": ("tag", "treatment", "시술", "처치", "시술코드", "태그"),
    "date": ("date", "treatment_date", "시술일", "진료일", "치료일", "날짜"),
    "note": ("note", "메모", "비고"),
    "marketing": ("marketing", "marketing_consent", "마케팅동의", "광고동의"),
    "contact": ("contact_consent", "연락동의"),
    "night": ("night_consent", "야간동의"),
}
CONSENTS = ("contact", "marketing", "night")
_YES = {"y", "yes", "예", "네", "동의", "o", "1", "true", "t"}
_NO = {"n", "no", "아니오", "아니요", "미동의", "비동의", "거부", "x", "0", "false", "f"}
_DATE = re.compile(
    r"^(\d{4})\s*([-./])\s*(\d{1,2})\s*\2\s*(\d{1,2})\.?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$"
)
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text.replace("\ufeff", "")).lower()


_COLUMN = {_norm(alias): name for name, aliases in ALIASES.items() for alias in aliases}


def _korean(name: str) -> str:
    return next(alias for alias in ALIASES[name] if not alias.isascii())


def known_columns() -> str:
    return "; ".join(f"{name}: {', '.join(aliases)}" for name, aliases in ALIASES.items())


# --- reading the file ---------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was in: UTF-8 (BOM or not), UTF-16 with a BOM, else CP949
    (which includes EUC-KR)."""
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise CsvError(
            "this is an Excel workbook, not CSV: save it as 'CSV UTF-8' (or CSV) first",
            field="body",
        )
    if data.startswith(codecs.BOM_UTF8):
        tries: tuple[tuple[bytes, str, str], ...] = ((data[3:], "utf-8", "utf-8-sig"),)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        tries = ((data, "utf-16", "utf-16"),)
    else:
        tries = ((data, "utf-8", "utf-8"), (data, "cp949", "cp949"))
    first: UnicodeDecodeError | None = None
    for raw, codec, name in tries:
        try:
            return raw.decode(codec), name
        except UnicodeDecodeError as error:
            first = first or error
    assert first is not None
    line = first.object[: first.start].count(b"\n") + 1
    raise CsvError(
        f"line {line}: the file is neither UTF-8 nor CP949/EUC-KR text (byte {first.start}): "
        "save it as 'CSV UTF-8'",
        field="body",
        line=line,
    )


@dataclass(frozen=True)
class LineError:
    """A problem with a row or a cell, at its line as in the file (the header is line 1)."""

    line: int
    field: str
    problem: str
    column: str | None = None
    """the header as written in the file, when it differs from `field`"""

    def render(self) -> str:
        where = f"{self.field} ({self.column})" if self.column else self.field
        return f"line {self.line}: {where}: {self.problem}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "field": self.field, "problem": self.problem}
        if self.column:
            out["column"] = self.column
        out["message"] = self.render()
        return out


@dataclass(frozen=True)
class Row:
    """A valid row of the file: the patient's registration, the treatment and their ids."""

    line: int
    registration: PatientRegistration
    record: TreatmentRecord
    tag: TreatmentTag
    given: frozenset[str]
    """optional cells that held a value (email, contact, marketing, night)"""
    patient_id: str
    treatment_id: str


@dataclass
class Parsed:
    """The file as read and checked: its encoding, the valid rows by line, the line errors."""

    encoding: str
    lines: list[int] = field(default_factory=list)
    """the line of every data row, in order (blank rows left out)"""
    rows: dict[int, Row] = field(default_factory=dict)
    errors: list[LineError] = field(default_factory=list)
    duplicates: int = 0


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(cells: list[str]) -> dict[int, tuple[str, str]]:
    """{cell index: (field, header as written)}; raises CsvError naming every problem."""
    columns: dict[int, tuple[str, str]] = {}
    unknown: list[str] = []
    seen: dict[str, str] = {}
    for index, cell in enumerate(cells):
        written = cell.replace("\ufeff", "").strip()
        if not written:
            continue  # Excel leaves empty columns at the end
        name = _COLUMN.get(_norm(written))
        if name is None:
            unknown.append(written)
            continue
        if name in seen:
            raise CsvError(
                f"line 1: columns '{seen[name]}' and '{written}' both mean {name}: keep one",
                field="body",
                line=1,
            )
        seen[name] = written
        columns[index] = (name, written)
    if unknown:
        listed = ", ".join(f"'{u}'" for u in unknown)
        raise CsvError(
            f"line 1: unknown column(s) {listed}; known columns are {known_columns()}",
            field="body",
            line=1,
            unknown_columns=unknown,
        )
    missing = [name for name in REQUIRED if name not in seen]
    if missing:
        wanted = ", ".join(f"{name} ({_korean(name)})" for name in missing)
        raise CsvError(
            f"line 1: missing required column(s) {wanted}; the header has "
            f"{', '.join(seen.values()) or 'nothing'}",
            field="body",
            line=1,
            missing_columns=missing,
        )
    return columns


def parse_date(text: str) -> date:
    """2026-11-20, 2026.11.20(.), 2026/11/20, 20261120; a time after the date is ignored."""
    match = _DATE.match(text) or _COMPACT_DATE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a date like 2026-11-20, 2026.11.20 or 20261120")
    groups = match.groups()
    year, month, day = (int(groups[0]), int(groups[-2]), int(groups[-1]))
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"'{text}' is not a valid date") from None


def parse_consent(text: str) -> bool:
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"'{text}' is not a yes/no value (Y/N, 예/아니오, 동의/미동의, 1/0)")


class Validator:
    """Turns one row's cells into a `Row`, or into the problems it has."""

    def __init__(self, hospital: HospitalConfig, departments: set[str] | None) -> None:
        self.hospital = hospital
        self.departments = departments
        self.tags: dict[str, TreatmentTag] = {}
        for tag in hospital.treatment_tags:
            self.tags[_norm(tag.id)] = tag
            self.tags.setdefault(_norm(tag.name), tag)
        self.today = clock.now().astimezone(hospital.zone).date()

    def row(
        self, line: int, values: dict[str, str], written: dict[str, str]
    ) -> Row | list[LineError]:
        errors: list[LineError] = []

        def bad(name: str, problem: str) -> None:
            column = written.get(name)
            errors.append(LineError(line, name, problem, column if column != name else None))

        for name in REQUIRED:
            if not values.get(name):
                bad(name, "is empty (required)")
        tag = None
        if values.get("tag"):
            tag = self.tags.get(_norm(values["tag"]))
            if tag is None:
                known = ", ".join(t.id for t in self.hospital.treatment_tags)
                bad("tag", f"unknown treatment tag '{values['tag']}'; known: {known}")
            elif self.departments is not None and tag.department not in self.departments:
                bad("tag", f"'{tag.id}' belongs to department '{tag.department}', not yours")
        day = None
        if values.get("date"):
            try:
                day = parse_date(values["date"])
            except ValueError as error:
                bad("date", str(error))
            else:
                try:  # the API's rule too (TreatmentRecord), on the hospital's today
                    dates.treatment_day(day, self.today)
                except ValueError as error:
                    bad("date", str(error))
                    day = None
        consents: dict[str, bool] = {}
        for name in CONSENTS:
            if values.get(name):
                try:
                    consents[name] = parse_consent(values[name])
                except ValueError as error:
                    bad(name, str(error))
        registration = None
        try:
            registration = PatientRegistration(
                name=values.get("name") or "-",
                phone=values.get("phone") or "010-0000-0000",
                email=values.get("email") or None,
                chart_no=values.get("chart_no") or None,
                consents=Consents(**consents),
            )
        except ValidationError as error:
            for item in error.errors(include_url=False):
                name = str(item["loc"][0]) if item["loc"] else "row"
                problem = str(item["msg"]).removeprefix("Value error, ")
                if problem.startswith("is not"):
                    problem = f"'{values.get(name, '')}' {problem}"
                bad(name, problem)
        record = None
        if tag is not None and day is not None:
            try:
                record = TreatmentRecord(tag=tag.id, date=day, note=values.get("note") or None)
            except ValidationError as error:
                for item in error.errors(include_url=False):
                    bad(str(item["loc"][0]) if item["loc"] else "row", str(item["msg"]))
        if errors:
            return errors
        assert registration is not None
        assert record is not None
        assert tag is not None
        pid = patient_id(self.hospital.hospital_id, registration.chart_no, registration.phone)
        given = frozenset(name for name in ("email", *CONSENTS) if values.get(name))
        return Row(
            line, registration, record, tag, given, pid, treatment_id(pid, tag.id, record.date)
        )


def parse(
    data: bytes | str, hospital: HospitalConfig, departments: set[str] | None = None
) -> Parsed:
    """Read and check every row; raises CsvError when the file as a whole is unusable."""
    if isinstance(data, bytes):
        text, encoding = decode(data)
    else:
        text, encoding = data.removeprefix("\ufeff"), "text"
    if not text.strip():
        raise CsvError("the file is empty: it needs a header line and rows", field="body")
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except csv.Error as error:
        raise CsvError(f"line 1: {error}", field="body", line=1) from None
    columns, width = _header(header), len(header)
    written = {name: header for name, header in columns.values()}
    parsed = Parsed(encoding)
    validator = Validator(hospital, departments)
    seen: set[str] = set()
    end = reader.line_num
    while True:
        line = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            parsed.lines.append(line)
            parsed.errors.append(LineError(line, "row", f"unreadable CSV ({error})"))
            end = reader.line_num
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        parsed.lines.append(line)
        if any(cell.strip() for cell in cells[width:]):
            parsed.errors.append(
                LineError(
                    line,
                    "row",
                    f"{len(cells)} values but the header has {width} columns "
                    '(a comma inside a value needs "quotes")',
                )
            )
            continue
        values = {
            name: cells[index].strip() for index, (name, _) in columns.items() if index < len(cells)
        }
        result = validator.row(line, values, written)
        if isinstance(result, list):
            parsed.errors.extend(result)
        elif result.treatment_id in seen:
            parsed.duplicates += 1
        else:
            seen.add(result.treatment_id)
            parsed.rows[line] = result
    return parsed


# --- the report ---------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What one import of a treatments file did (or would do, in a dry run), and what it cost."""

    encoding: str
    dry_run: bool
    rows: int = 0
    valid: int = 0
    imported: int = 0
    already_imported: int = 0
    duplicates: int = 0
    errors: list[LineError] = field(default_factory=list)
    patients_created: int = 0
    patients_updated: int = 0
    touchpoints_planned: int = 0
    touchpoints_skipped: int = 0
    touchpoints_repaired: int = 0
    skipped_erased: int = 0
    """rows of patients erased at their request (a tombstone): never imported again"""
    erased_lines: list[int] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    complete: bool = True
    stopped_after_line: int | None = None
    seconds: float = 0.0

    @property
    def bad(self) -> int:
        return len({e.line for e in self.errors})

    def as_dict(self, max_errors: int | None = None) -> dict[str, Any]:
        shown = self.errors if max_errors is None else self.errors[:max_errors]
        out: dict[str, Any] = {
            "dry_run": self.dry_run,
            "encoding": self.encoding,
            "rows": self.rows,
            "valid": self.valid,
            "imported": 0 if self.dry_run else self.imported,
            "already_imported": self.already_imported,
            "duplicates_in_file": self.duplicates,
            "bad": self.bad,
            "errors": [e.as_dict() for e in shown],
            "errors_total": len(self.errors),
            "patients_created": self.patients_created,
            "patients_updated": self.patients_updated,
            "touchpoints_planned": self.touchpoints_planned,
            "touchpoints_skipped": self.touchpoints_skipped,
            "touchpoints_repaired": self.touchpoints_repaired,
            "skipped_erased": self.skipped_erased,
            "erased_lines": self.erased_lines[:max_errors] if max_errors else self.erased_lines,
            "requests": dict(sorted(self.requests.items())),
            "requests_total": sum(self.requests.values()),
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
        }
        if self.dry_run:
            out["would_import"] = self.imported
        if len(shown) < len(self.errors):
            out["errors_truncated"] = True
        if not self.complete:
            out["stopped_after_line"] = self.stopped_after_line
            out["message"] = (
                f"stopped after line {self.stopped_after_line} to stay within the time limit: "
                "send the same file again to import the rest (imported rows are skipped)"
            )
        return out


def render(report: dict[str, Any]) -> str:
    """The report (as `ImportReport.as_dict` gives it, or as the API answered it) for people."""
    dry = report.get("dry_run")
    done = (
        f"{report.get('would_import', 0)} would be imported"
        if dry
        else (f"{report['imported']} imported")
    )
    lines = [
        f"{report['rows']} rows ({report['encoding']}): {done}, "
        f"{report['already_imported']} already imported, {report['bad']} bad"
        + (
            f", {report['duplicates_in_file']} repeated in the file"
            if report.get("duplicates_in_file")
            else ""
        )
        + (
            f", {report['skipped_erased']} skipped: patients erased at their request"
            if report.get("skipped_erased")
            else ""
        )
        + (" (dry run: nothing written)" if dry else ""),
        f"patients: {report['patients_created']} new, {report['patients_updated']} with new "
        "contact details or consents; "
        f"touchpoints: {report['touchpoints_planned']} planned, "
        f"{report['touchpoints_skipped']} skipped (already past)"
        + (
            f", {report['touchpoints_repaired']} missing ones written"
            if report.get("touchpoints_repaired")
            else ""
        ),
        f"AWS requests: {report['requests_total']}"
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in report["requests"].items()) + ")"
            if report["requests"]
            else ""
        )
        + f" in {report['seconds']:.1f} s",
    ]
    if not report.get("complete", True):
        lines.append(str(report.get("message")))
    if report["errors"]:
        lines.append(f"bad rows ({report['bad']}):")
        lines += [f"  {e['message']}" for e in report["errors"]]
        if report.get("errors_truncated"):
            lines.append(f"  ... {report['errors_total'] - len(report['errors'])} more")
    return "\n".join(lines)


# --- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Said:
    """What a patient's rows say about them, in file order: a later row's cell wins over an
    earlier one's, an empty cell says nothing."""

    name: str
    phone: str
    email: str | None
    chart_no: str | None
    consents: dict[str, bool]
    newest: dict[str, str]
    """the latest treatment date of each tag in these rows"""

    @classmethod
    def of(cls, rows: list[Row]) -> _Said:
        email, chart_no = None, None
        consents: dict[str, bool] = {}
        newest: dict[str, str] = {}
        for row in rows:
            registration = row.registration
            email = registration.email if "email" in row.given else email
            chart_no = registration.chart_no or chart_no
            for name in CONSENTS:
                if name in row.given:
                    consents[name] = getattr(registration.consents, name)
            day = row.record.date.isoformat()
            newest[row.tag.id] = max(day, newest.get(row.tag.id, day))
        last = rows[-1].registration
        return cls(last.name, last.phone, email, chart_no, consents, newest)


class Importer:
    def __init__(
        self,
        hospital: HospitalConfig,
        *,
        by: str,
        dry_run: bool = False,
        chunk_rows: int = CHUNK_ROWS,
        patients: PatientRepository | None = None,
    ) -> None:
        self.hospital = hospital
        self.patients: PatientRepository = patients or DynamoPatientRepository()
        self.desk = RecallDesk(hospital, self.patients)
        self.by = by
        self.dry_run = dry_run
        self.chunk_rows = chunk_rows
        self.requests: Counter[str] = Counter()
        self.report = ImportReport("", dry_run)

    def run(
        self,
        parsed: Parsed,
        progress: Progress | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> ImportReport:
        started = time.perf_counter()
        report = self.report = ImportReport(
            parsed.encoding,
            self.dry_run,
            rows=len(parsed.lines),
            valid=len(parsed.rows) + parsed.duplicates,
            duplicates=parsed.duplicates,
            errors=sorted(parsed.errors, key=lambda e: e.line),
            requests=self.requests,
        )
        lines = parsed.lines
        longest = 0.0
        for start in range(0, len(lines), self.chunk_rows):
            # another chunk only if it fits: as long as the longest yet, and the margin
            if start and time_left is not None and time_left() < 1.5 * longest + STOP_MARGIN_S:
                report.complete, report.stopped_after_line = False, lines[start - 1]
                break
            window = lines[start : start + self.chunk_rows]
            chunk = [parsed.rows[line] for line in window if line in parsed.rows]
            began = time.perf_counter()
            if chunk:
                self._chunk(chunk)
            longest = max(longest, time.perf_counter() - began)
            if progress is not None:
                progress(start + len(window), len(lines))
        report.seconds = time.perf_counter() - started
        return report

    def _chunk(self, rows: list[Row]) -> None:
        report = self.report
        rows = self._not_erased(rows)
        if not rows:
            return
        existing = self._existing(rows)
        new = [r for r in rows if r.treatment_id not in existing]
        report.already_imported += len(rows) - len(new)
        # patients are read (and written) for rows with a new treatment only
        patients = self._patients({r.patient_id for r in new}) if new else {}
        if self.dry_run:
            report.imported += len(new)
            report.patients_created += len({r.patient_id for r in new} - set(patients))
            for row in new:
                self._count(self._touchpoints(row))
            return
        if len(new) < len(rows):
            self._repair([r for r in rows if r.treatment_id in existing])
        by_patient: dict[str, list[Row]] = {}
        for row in new:
            by_patient.setdefault(row.patient_id, []).append(row)
        touchpoints: list[Touchpoint] = []
        now = clock.iso(clock.now())
        for pid, own in by_patient.items():
            self._write_patient(pid, own, patients, now)
            for row in own:
                # the claim: whoever creates the treatment (and only they) plans its touchpoints
                self.requests["PutItem"] += 1
                if self.patients.add_treatment(self._treatment(row, now)):
                    report.imported += 1
                    planned = self._touchpoints(row)
                    self._count(planned)
                    touchpoints += planned
                else:
                    report.already_imported += 1
        if touchpoints:
            self.requests["BatchWriteItem"] += self.patients.add_touchpoints(touchpoints)

    def _not_erased(self, rows: list[Row]) -> list[Row]:
        """The rows whose patient was not erased at their request (by patient id, phone or
        e-mail: their tombstones); the others are counted by line, nothing personal."""
        identities = [
            tombstones.Identity(
                r.patient_id, phone=r.registration.phone, email=r.registration.email
            )
            for r in rows
        ]
        wanted = {d for i in identities for d in i.details()}
        self.requests["BatchGetItem"] += -(-len(wanted) // MAX_KEYS)
        stones = tombstones.found(self.hospital.hospital_id, identities)
        kept = []
        for row, hit in zip(rows, stones, strict=True):
            if hit:
                self.report.skipped_erased += 1
                self.report.erased_lines.append(row.line)
            else:
                kept.append(row)
        return kept

    def _repair(self, rows: list[Row]) -> None:
        """Touchpoints missing beside a treatment that exists (a run cut short between the claim
        and the batch) are written now; present ones are never written again."""
        expected: dict[tuple[str, str], Touchpoint] = {}
        for row in rows:
            for touchpoint in self._touchpoints(row):
                expected[item_key(touchpoint_item(touchpoint))] = touchpoint
        keys = [store.key(pk, sk) for pk, sk in expected]
        found = {item_key(store.from_item(i)) for i in self._batch_get(keys, "pk, sk")}
        missing = [t for key, t in expected.items() if key not in found]
        if missing:
            self.requests["BatchWriteItem"] += self.patients.add_touchpoints(missing)
            self.report.touchpoints_repaired += len(missing)

    def _touchpoints(self, row: Row) -> list[Touchpoint]:
        return self.desk.plan_touchpoints(
            row.patient_id, row.treatment_id, row.tag, row.record.date
        )

    def _count(self, touchpoints: Iterable[Touchpoint]) -> None:
        for touchpoint in touchpoints:
            if touchpoint.is_planned:
                self.report.touchpoints_planned += 1
            else:
                self.report.touchpoints_skipped += 1

    # --- patients -------------------------------------------------------------------------------
    def _write_patient(
        self, pid: str, rows: list[Row], patients: dict[str, dict[str, Any]], now: str
    ) -> None:
        """Create the patient, or update what the file changes, before any of their treatments
        (a touchpoint never waits on a missing patient)."""
        said = _Said.of(rows)
        for _ in range(MAX_ATTEMPTS):
            stored = patients.get(pid)
            if stored is None:
                item, after = self._new_patient(pid, said, now)
                if self._conditional(
                    "PutItem",
                    Item=store.to_item(item),
                    ConditionExpression="attribute_not_exists(pk)",
                ):
                    patients[pid] = after
                    self.report.patients_created += 1
                    self._audit(pid, said.phone, None, after.get("consents") or {})
                    return
            else:
                update, after, changed = self._changed_patient(pid, said, stored, now)
                if update is None:
                    return
                if self._conditional("UpdateItem", **update):
                    patients[pid] = after
                    self.report.patients_updated += changed
                    self._audit(
                        pid, said.phone, stored.get("consents"), after.get("consents") or {}
                    )
                    return
            # registered or changed by someone else meanwhile: start again from what is stored
            patients.pop(pid, None)
            patients.update(self._patients({pid}))
        raise RuntimeError(f"the patient of line {rows[-1].line} kept changing while importing")

    def _audit(
        self, pid: str, phone: str, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> None:
        consent.put_all(
            consent.changes_of(
                self.hospital.hospital_id,
                phone,
                before,
                after,
                source="import",
                by=self.by,
                patient_id=pid,
            )
        )

    def _new_patient(
        self, pid: str, said: _Said, now: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """As `repository.upsert_patient` stores a new patient, with its last treatments."""
        patient = Patient(
            id=pid,
            name=said.name,
            phone=said.phone,
            email=said.email,
            chart_no=said.chart_no,
            consents=Consents(**said.consents).model_dump(),
            created_at=now,
            updated_at=now,
            last_treatment=said.newest,
            source=SOURCE,
        )
        item = patient_item(patient, recipient_key(self.hospital.hospital_id, said.phone))
        return item, patient.to_item()

    def _changed_patient(
        self, pid: str, said: _Said, stored: dict[str, Any], now: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any], bool]:
        """The UpdateItem arguments for what the file changes (None: nothing), the patient after
        it, and whether contact or consents change. Empty cells keep what is stored: an export
        without a consent column never turns back on a contact someone turned off."""
        sets: dict[str, Any] = {}
        if said.name != stored.get("name"):
            sets["name"] = said.name
        if said.phone != stored.get("phone"):
            sets["phone"] = said.phone
            sets.update(phone_index(recipient_key(self.hospital.hospital_id, said.phone)))
        if said.email and said.email != stored.get("email"):
            sets["email"] = said.email
        if said.chart_no and said.chart_no != stored.get("chart_no"):
            sets["chart_no"] = said.chart_no
        consents = {**(stored.get("consents") or {}), **said.consents}
        if consents != (stored.get("consents") or {}):
            sets["consents"] = consents
        known = stored.get("last_treatment")
        later = {t: day for t, day in said.newest.items() if day > (known or {}).get(t, "")}
        if not sets and not later:
            return None, stored, False
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        assignments: list[str] = []
        conditions = ["attribute_exists(pk)"]
        if sets:
            sets["updated_at"] = now
            for i, (name, value) in enumerate(sets.items()):
                names[f"#f{i}"], values[f"f{i}"] = name, value
                assignments.append(f"#f{i} = :f{i}")
            # a registration through the API meanwhile wins: plan again from what it stored
            names["#seen"] = "updated_at"
            if "updated_at" in stored:
                values["seen"] = stored["updated_at"]
                conditions.append("#seen = :seen")
            else:
                conditions.append("attribute_not_exists(#seen)")
        if later:
            names["#lt"] = "last_treatment"
            if known is None:
                values["lt"] = later
                assignments.append("#lt = :lt")
                conditions.append("attribute_not_exists(#lt)")
            else:
                for i, (tag, day) in enumerate(later.items()):
                    names[f"#t{i}"], values[f"d{i}"] = tag, day
                    assignments.append(f"#lt.#t{i} = :d{i}")
                    conditions.append(f"(attribute_not_exists(#lt.#t{i}) OR #lt.#t{i} < :d{i})")
        update = {
            "Key": patient_key(pid),
            "UpdateExpression": "SET " + ", ".join(assignments),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": store.values(**values),
        }
        after = strip({**stored, **sets})
        after["last_treatment"] = {**(known or {}), **later}
        return update, after, bool(sets)

    def _treatment(self, row: Row, now: str) -> Treatment:
        """As `RecallDesk.record_treatment` stores it, marked as imported."""
        return Treatment(
            id=row.treatment_id,
            patient_id=row.patient_id,
            tag=row.tag.id,
            department=row.tag.department,
            date=row.record.date.isoformat(),
            note=row.record.note,
            recorded_by=self.by,
            recorded_at=now,
            source=SOURCE,
        )

    # --- requests -------------------------------------------------------------------------------
    def _conditional(self, operation: str, **kwargs: Any) -> bool:
        """One PutItem/UpdateItem; False when its condition failed."""
        self.requests[operation] += 1
        if operation == "PutItem":
            return store.conditional_write("put_item", **kwargs)
        return store.conditional_write("update_item", **kwargs)

    def _batch_get(
        self, keys: list[dict[str, Any]], projection: str | None = None
    ) -> list[dict[str, Any]]:
        """BatchGetItem, 100 keys a request, consistent (a re-run sees what was just written)."""
        found: list[dict[str, Any]] = []
        table = store.table_name()
        for start in range(0, len(keys), MAX_KEYS):
            wanted: dict[str, Any] = {
                "Keys": keys[start : start + MAX_KEYS],
                "ConsistentRead": True,
            }
            if projection:
                wanted["ProjectionExpression"] = projection
            request: dict[str, Any] = {table: wanted}
            delay = 0.02
            while request:
                self.requests["BatchGetItem"] += 1
                response = store.dynamodb().batch_get_item(RequestItems=request)
                found += response.get("Responses", {}).get(table, [])
                request = dict(response.get("UnprocessedKeys") or {})
                if request:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
        return found

    def _patients(self, pids: set[str]) -> dict[str, dict[str, Any]]:
        items = self._batch_get([patient_key(p) for p in sorted(pids)])
        patients = (strip(store.from_item(item)) for item in items)
        return {p["id"]: p for p in patients}

    def _existing(self, rows: list[Row]) -> set[str]:
        keys = [treatment_key(r.patient_id, r.treatment_id) for r in rows]
        return {treatment_of_key(i) for i in self._batch_get(keys, "sk")}


def import_treatments(
    hospital: HospitalConfig,
    data: bytes | str,
    *,
    by: str,
    dry_run: bool = False,
    departments: set[str] | None = None,
    progress: Progress | None = None,
    time_left: Callable[[], float] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    patients: PatientRepository | None = None,
) -> ImportReport:
    """Check every row of the CSV, import the good ones (idempotently) and report.

    `departments`: None for every tag, else rows whose tag belongs to another department are bad.
    `time_left` (seconds) is asked between chunks: a call stops short of its time limit while
    the next chunk might not fit, and the same file sent again completes the import."""
    parsed = parse(data, hospital, departments)
    importer = Importer(hospital, by=by, dry_run=dry_run, chunk_rows=chunk_rows, patients=patients)
    return importer.run(parsed, progress, time_left)
