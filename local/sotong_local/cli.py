"""`sotong`: the operator's command line (validate configs, read the sandbox outbox, ...).

It lives beside the local stack, outside the shared layer: no Lambda ships it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

API_PASSES = 20
# what the calls of one `import-treatments --api` add up to
API_SUMS = (
    "imported",
    "patients_created",
    "patients_updated",
    "touchpoints_planned",
    "touchpoints_skipped",
    "touchpoints_repaired",
    "seconds",
)


def _validate(args: argparse.Namespace) -> int:
    from sotong.complaints import rulebook
    from sotong.config import ConfigError, load_hospital_file

    failed = 0
    for path in args.files:
        try:
            config = load_hospital_file(path)
            rules = rulebook.checked(config, str(path))
        except ConfigError as error:
            failed += 1
            print(error.render(), file=sys.stderr)
        else:
            print(
                f"{path}: ok ({config.hospital_id}, {len(config.departments)} departments, "
                f"{len(config.templates)} templates, {len(config.treatment_tags)} treatment tags, "
                f"{len(rules.rules)} classifier rules)"
            )
    return 1 if failed else 0


def _stack_settings(command: str, stack: str | None, wanted: list[str]) -> dict[str, str] | None:
    """The table and queue names a command needs, from the environment or a stack's outputs
    (each output is described with the variable the functions read); None after saying what is
    missing."""
    import os

    settings = dict(os.environ)
    if stack:
        import boto3

        outputs = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        for output in outputs.get("Outputs", []):
            if output.get("Description") in wanted:
                settings[output["Description"]] = output["OutputValue"]
    missing = [name for name in wanted if not settings.get(name)]
    if missing:
        print(
            f"{command} needs " + ", ".join(missing) + " (environment, or --stack NAME; or a "
            "running local stack, found at $SOTONG_LOCAL_API or http://127.0.0.1:8000)",
            file=sys.stderr,
        )
        return None
    os.environ.update({name: settings[name] for name in wanted})
    return settings


def _local_stack(command: str, wanted: list[str]) -> dict[str, Any] | None:
    """A running local stack's settings (`$SOTONG_LOCAL_API`, else http://127.0.0.1:8000),
    when the environment names none of `wanted`; None when there is no such stack."""
    import os

    if any(os.environ.get(name) for name in wanted):
        return None
    from sotong_local.commands import use_local_stack

    return use_local_stack(command)


def _replay(args: argparse.Namespace) -> int:
    import boto3

    from sotong.config import load_hospital_file
    from sotong.notify.replay import replay_dead_letters
    from sotong.resources import NOTIFICATIONS, TABLES

    wanted = [NOTIFICATIONS.env, NOTIFICATIONS.dlq_env, *(t.env for t in TABLES)]
    local = None if args.stack else _local_stack("replay-dlq", wanted)
    settings = _stack_settings("replay-dlq", args.stack, wanted)
    if settings is None:
        return 2
    hospital = load_hospital_file(
        args.hospital or (local["hospital_config"] if local else "hospitals/demo.yaml")
    )
    report = replay_dead_letters(
        boto3.client("sqs"),
        settings[NOTIFICATIONS.dlq_env],
        settings[NOTIFICATIONS.env],
        hospital.hospital_id,
        limit=args.limit,
    )
    print(
        f"replayed {report.replayed} message request(s); {report.reopened} record(s) reopened; "
        f"{len(report.unreadable)} unreadable left in the DLQ"
    )
    return 0


def _classify(args: argparse.Namespace) -> int:
    """JSON lines {"text": ...} in, JSON lines with kind, category, urgency out; or --evaluate."""
    import json
    import os

    from sotong.complaints import rulebook
    from sotong.complaints.classify import classifier_for
    from sotong.config import ConfigError, load_hospital_file
    from sotong.config.loader import CONFIG_PATH_ENV
    from sotong_local.evaluation import evaluate, read_labelled

    path = args.hospital or os.environ.get(CONFIG_PATH_ENV) or "hospitals/demo.yaml"
    try:
        hospital = load_hospital_file(path)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 2
    if args.export_corrections:
        return _export_corrections(args, hospital)
    classifier = classifier_for(hospital)
    if args.evaluate:
        for number, labelled in enumerate(args.evaluate):
            try:
                items = read_labelled(labelled, list(hospital.complaints.categories))
            except (OSError, ValueError) as error:
                print(error, file=sys.stderr)
                return 2
            print(("\n" if number else "") + f"{labelled} (hospital {hospital.hospital_id}):")
            says = {
                rule.id: {"category": rule.category, "urgency": rule.urgency, "kind": rule.kind}
                for rule in rulebook.for_hospital(hospital).rules
                if rule.id
            }
            print(evaluate(classifier, items, says).render())
        return 0
    failed = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            data, problem = None, f"not valid JSON ({error.msg})"
        else:
            problem = "expected an object with a text" if not isinstance(data, dict) else ""
        text = data.get("text") if isinstance(data, dict) else None
        hint = data.get("category_hint") if isinstance(data, dict) else None
        if not problem and (not isinstance(text, str) or not text.strip()):
            problem = '"text" must be a non-empty string'
        if problem or not isinstance(text, str):
            failed += 1
            print(f"line {number}: {problem}", file=sys.stderr)
            continue
        result = classifier.classify(text, hint if isinstance(hint, str) else None)
        out = {
            "text": text,
            "kind": result.kind,
            "category": result.category,
            "urgency": result.urgency,
            "matched": list(result.matched),
        }
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 1 if failed else 0


def _import_treatments(args: argparse.Namespace) -> int:
    """Exit 0: every row imported (or already there); 1: bad rows (the good ones are imported);
    2: nothing could be imported (file, config, header, environment or API problem)."""
    import os
    from pathlib import Path

    from botocore.exceptions import BotoCoreError, ClientError

    from sotong.config import ConfigError, load_hospital_file
    from sotong.config.loader import CONFIG_PATH_ENV
    from sotong.recall import importer
    from sotong.resources import MAIN

    try:
        data = Path(args.file).read_bytes()
    except OSError as error:
        print(f"{args.file}: {error.strerror or error}", file=sys.stderr)
        return 2
    if args.api:
        return _import_over_api(args, data)
    local = _local_stack("import-treatments", [MAIN.env])
    try:
        hospital = load_hospital_file(
            args.hospital
            or (local["hospital_config"] if local else None)
            or os.environ.get(CONFIG_PATH_ENV)
            or "hospitals/demo.yaml"
        )
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 2
    if not os.environ.get(MAIN.env):
        print(
            f"import-treatments writes to the table named by ${MAIN.env}: set it, run the local "
            "stack (`make run`; found at $SOTONG_LOCAL_API or http://127.0.0.1:8000), or send "
            "the file to a running API with --api URL --token TOKEN",
            file=sys.stderr,
        )
        return 2
    progress = _Progress(sys.stderr)
    try:
        report = importer.import_treatments(
            hospital,
            data,
            by=args.by or f"import:{os.environ.get('USER') or 'cli'}",
            dry_run=args.dry_run,
            progress=progress,
        )
    except importer.CsvError as error:
        print(f"{args.file}: {error.message}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        # rows imported before this stay imported: running the file again goes on from there
        print(f"AWS ({os.environ[MAIN.env]}): {error}", file=sys.stderr)
        return 2
    finally:
        progress.finish()
    print(f"{args.file}: " + importer.render(report.as_dict()))
    return 1 if report.bad else 0


class _Progress:
    """Rows done on stderr: one line rewritten in place on a terminal, else a line each 10 %."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if self.tty:
            rate = done / max(time.monotonic() - self.started, 1e-6)
            line = f"importing: {done:,}/{total:,} rows ({percent}%), {rate:,.0f} rows/s"
            self.stream.write(f"\r{line}\x1b[K")
            self.stream.flush()
            self.shown = percent
        elif percent // 10 > self.shown // 10 or self.shown < 0:
            print(f"importing: {done:,}/{total:,} rows ({percent}%)", file=self.stream, flush=True)
            self.shown = percent

    def finish(self) -> None:
        if self.tty and self.shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _import_over_api(args: argparse.Namespace, data: bytes) -> int:
    """POST the file (re-encoded as UTF-8) to a running API; send it again while the API stops
    short of its time limit (imported rows are skipped the next time)."""
    import json
    import os
    import urllib.error
    import urllib.request

    from sotong.recall import importer

    try:
        text, encoding = importer.decode(data)
    except importer.CsvError as error:
        print(f"{args.file}: {error.message}", file=sys.stderr)
        return 2
    body = text.encode("utf-8")
    if len(body) > importer.MAX_API_BYTES:
        print(
            f"{args.file}: {len(body) / 2**20:.1f} MB is more than the API takes "
            f"({importer.MAX_API_BYTES // 2**20} MB): run without --api to write to the tables",
            file=sys.stderr,
        )
        return 2
    token = args.token or os.environ.get("SOTONG_TOKEN")
    url = args.api.rstrip("/") + "/imports/treatments" + ("?dry_run=true" if args.dry_run else "")
    headers = {"Content-Type": "text/csv; charset=utf-8"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    earlier: dict[str, Any] = {name: 0 for name in API_SUMS} | {"requests": {}}
    for _ in range(API_PASSES):
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
                status, raw = int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            print(f"no answer from {args.api} ({getattr(error, 'reason', error)})", file=sys.stderr)
            return 2
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"message": raw.decode(errors="replace")}
        if status != 200 or not isinstance(answer, dict):
            message = answer.get("message") if isinstance(answer, dict) else answer
            print(f"{args.file}: the API answered {status}: {message}", file=sys.stderr)
            return 2
        if answer.get("complete", True):
            break
        for name in API_SUMS:
            earlier[name] += answer[name]
        for name, count in answer["requests"].items():
            earlier["requests"][name] = earlier["requests"].get(name, 0) + count
        print(
            f"the API stopped after line {answer.get('stopped_after_line')} (its time limit): "
            "sending the file again (imported rows are skipped)",
            file=sys.stderr,
        )
    answer["already_imported"] -= earlier["imported"]  # this call found the earlier calls' rows
    for name in API_SUMS:
        answer[name] += earlier[name]
    for name, count in earlier["requests"].items():
        answer["requests"][name] = answer["requests"].get(name, 0) + count
    answer["requests_total"] = sum(answer["requests"].values())
    answer["encoding"] = f"{encoding}, sent as utf-8"
    print(f"{args.file}: " + importer.render(answer))
    return 1 if answer["bad"] else 0


def _openapi(args: argparse.Namespace) -> int:
    """Write the whole API's OpenAPI document (every function's resolver, merged)."""
    import os

    from sotong.config import ConfigError
    from sotong.config.loader import CONFIG_PATH_ENV
    from sotong_local import openapi

    # The API functions read their hospital when imported; the document does not depend on it.
    demo = openapi.default_functions_dir().parent / "hospitals" / "demo.yaml"
    if args.hospital:
        os.environ[CONFIG_PATH_ENV] = args.hospital
    os.environ.setdefault(CONFIG_PATH_ENV, str(demo))
    os.environ.setdefault("AWS_DEFAULT_REGION", "ap-northeast-2")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Sotong")
    try:
        text = openapi.render(openapi.document(functions_dir=args.functions))
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 2
    except (openapi.OpenApiError, ImportError) as error:
        print(error, file=sys.stderr)
        return 1
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"{args.output}: OpenAPI {openapi.TITLE}", file=sys.stderr)
    return 0


def _local(args: argparse.Namespace) -> int:
    # The local stack's commands live beside it; they are dev tools, not part of the layer.
    from sotong_local import commands

    result: int = commands.main(args.local_command, args.rest)
    return result


def _months(since: str, until: str) -> list[str]:
    year, month = map(int, since.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= until:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _export_corrections(args: argparse.Namespace, hospital: Any) -> int:
    """Staff corrections as labelled JSON lines on stdout (texts are patient data: anonymise
    before they go anywhere near the repository)."""
    import json
    import re

    from sotong import clock
    from sotong.complaints.classify import classifier_for
    from sotong.complaints.service import ComplaintDesk
    from sotong.resources import TABLES

    month = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
    until = args.until or clock.now().astimezone(hospital.zone).strftime("%Y-%m")
    for name, value in (("--since", args.since), ("--until", until)):
        if not value or not month.match(value):
            print(
                f"classify --export-corrections: {name} must be a month, YYYY-MM", file=sys.stderr
            )
            return 2
    tables = [t.env for t in TABLES]
    if not args.stack:
        _local_stack("classify --export-corrections", tables)
    if _stack_settings("classify --export-corrections", args.stack, tables) is None:
        return 2
    desk = ComplaintDesk(hospital, classifier_for(hospital))
    lines = desk.corrections(_months(args.since, until))
    for line in lines:
        print(json.dumps(line, ensure_ascii=False))
    print(f"{len(lines)} correction(s) exported", file=sys.stderr)
    return 0


def _config_diff(args: argparse.Namespace) -> int:
    from sotong.config import ConfigError, load_hospital_file
    from sotong.config.diff import operations_changes, patient_changes

    try:
        old, new = load_hospital_file(args.old), load_hospital_file(args.new)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 2
    lines = patient_changes(old, new)
    print("\n".join(lines) if lines else "nothing changes for patients")
    for line in operations_changes(old, new):
        print(f"operations: {line}")
    return 0


def _restore_copy(args: argparse.Namespace) -> int:
    import boto3

    from sotong_local.restore import copy_back

    if args.source == args.target:
        print("restore-copy: --from and --to name the same table", file=sys.stderr)
        return 2
    report = copy_back(boto3.client("dynamodb"), args.source, args.target, overwrite=args.overwrite)
    print(
        f"{report.scanned} item(s) read from {args.source}; {report.written} written to "
        f"{args.target}; {report.kept} already there and kept"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sotong", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check hospital config files")
    validate.add_argument("files", nargs="+", help="hospital YAML/JSON files")
    validate.set_defaults(run=_validate)

    replay = sub.add_parser(
        "replay-dlq", help="put dead-lettered message requests back on the notification queue"
    )
    replay.add_argument(
        "--hospital",
        help="hospital config file (default: the local stack's, else hospitals/demo.yaml)",
    )
    replay.add_argument(
        "--stack",
        help="read queue URLs and table names from this stack's outputs (default: the "
        "environment; without it, the running local stack at $SOTONG_LOCAL_API or "
        "http://127.0.0.1:8000)",
    )
    replay.add_argument("--limit", type=int, default=1000)
    replay.set_defaults(run=_replay)

    config_diff = sub.add_parser(
        "config-diff",
        help="what a hospital config change changes for patients (templates, plans, quiet "
        "hours, SLA, sender); e.g. sotong config-diff <(git show main:hospitals/x.yaml) "
        "hospitals/x.yaml",
    )
    config_diff.add_argument("old", help="the config as deployed")
    config_diff.add_argument("new", help="the config under review")
    config_diff.set_defaults(run=_config_diff)

    restore = sub.add_parser(
        "restore-copy",
        help="copy items back from a point-in-time restored table (docs/restore-from-pitr.md)",
    )
    restore.add_argument("--from", dest="source", required=True, help="the restored table")
    restore.add_argument("--to", dest="target", required=True, help="the stack's live table")
    restore.add_argument(
        "--overwrite",
        action="store_true",
        help="also put back items the live table has (default: only the missing ones)",
    )
    restore.set_defaults(run=_restore_copy)

    classify = sub.add_parser(
        "classify",
        help='classify complaints: JSON lines {"text": ...} on stdin, JSON lines out',
    )
    classify.add_argument(
        "--hospital", help="hospital config file (default: $SOTONG_HOSPITAL_CONFIG or the demo)"
    )
    classify.add_argument(
        "--evaluate",
        metavar="LABELLED_JSONL",
        action="append",
        help="measure against labelled JSON lines {text, kind, category, urgency} instead",
    )
    classify.add_argument(
        "--export-corrections",
        action="store_true",
        help="print staff corrections as labelled JSON lines (for make train-classifier)",
    )
    classify.add_argument("--since", help="with --export-corrections: first month, YYYY-MM")
    classify.add_argument("--until", help="with --export-corrections: last month (this one)")
    classify.add_argument("--stack", help="read table names from this stack's outputs")
    classify.set_defaults(run=_classify)

    treatments = sub.add_parser(
        "import-treatments",
        help="import treatments from an EMR's CSV export: bad rows listed by line, the rest "
        "imported once",
        description="Check every row of the CSV and import the good ones into the tables the "
        "environment names ($SOTONG_TABLE), else into the running local stack's (found at "
        "$SOTONG_LOCAL_API or http://127.0.0.1:8000, with its hospital), or with --api send the "
        "file to a running API. Importing the same file again imports nothing twice. Exit 0: all "
        "rows good; 1: bad rows (the good ones imported); 2: nothing imported.",
    )
    treatments.add_argument("file", help="the CSV: UTF-8 or CP949, Korean or English headers")
    treatments.add_argument(
        "--hospital", help="hospital config file (default: $SOTONG_HOSPITAL_CONFIG or the demo)"
    )
    treatments.add_argument(
        "--dry-run", action="store_true", help="check every row and report; write nothing"
    )
    treatments.add_argument("--api", metavar="URL", help="POST the file to this API instead")
    treatments.add_argument(
        "--token",
        help="staff sign-in token for --api (default: $SOTONG_TOKEN; `sotong token` prints one "
        "for the local stack)",
    )
    treatments.add_argument("--by", help="recorded as the importer (default: import:$USER)")
    treatments.set_defaults(run=_import_treatments)

    spec = sub.add_parser(
        "openapi",
        help="write the OpenAPI document of the whole API (every route of sotong.resources)",
    )
    spec.add_argument("-o", "--output", help="file to write (default: standard output)")
    spec.add_argument("--functions", help="the functions/ folder (default: the repository's)")
    spec.add_argument(
        "--hospital", help="hospital config file (default: $SOTONG_HOSPITAL_CONFIG or the demo)"
    )
    spec.set_defaults(run=_openapi)

    for name, help_text in (
        ("outbox", "show what the local sandbox provider sent (as patients would see it)"),
        ("schedule", "run a scheduled function of the running local stack now"),
        ("token", "print a local staff sign-in token for the local stack"),
        ("sandbox", "make the local sandbox provider fail on demand (sandbox fail --mode ...)"),
        ("simulate", "play a patient's reply, a delivery report or an 080 opt-out, signed"),
    ):
        local = sub.add_parser(name, help=help_text, add_help=False)
        local.add_argument("rest", nargs=argparse.REMAINDER)
        local.set_defaults(run=_local, local_command=name)
    return parser


LOCAL_COMMANDS = ("outbox", "schedule", "token", "sandbox", "simulate")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in LOCAL_COMMANDS:
        # argparse's REMAINDER would not pass on options: hand the rest over as it is
        from sotong_local import commands

        local_result: int = commands.main(arguments[0], arguments[1:])
        return local_result
    args = build_parser().parse_args(arguments)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
