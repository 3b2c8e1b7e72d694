"""`sotong`: the operator's command line (validate configs, read the sandbox outbox, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _validate(args: argparse.Namespace) -> int:
    from sotong.config import ConfigError, load_hospital_file

    failed = 0
    for path in args.files:
        try:
            config = load_hospital_file(path)
        except ConfigError as error:
            failed += 1
            print(error.render(), file=sys.stderr)
        else:
            print(
                f"{path}: ok ({config.hospital_id}, {len(config.departments)} departments, "
                f"{len(config.templates)} templates, {len(config.treatment_tags)} treatment tags)"
            )
    return 1 if failed else 0


def _replay(args: argparse.Namespace) -> int:
    import os

    import boto3

    from sotong.config import load_hospital_file
    from sotong.notify.replay import replay_dead_letters
    from sotong.resources import NOTIFICATIONS, TABLES

    settings = dict(os.environ)
    wanted = [NOTIFICATIONS.env, NOTIFICATIONS.dlq_env, *(t.env for t in TABLES)]
    if args.stack:
        outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        # the stack describes each table/queue output with the variable the functions read
        for output in outputs.get("Outputs", []):
            if output.get("Description") in wanted:
                settings[output["Description"]] = output["OutputValue"]
    missing = [name for name in wanted if not settings.get(name)]
    if missing:
        print(
            "replay-dlq needs " + ", ".join(missing) + " (environment, or --stack NAME)",
            file=sys.stderr,
        )
        return 2
    os.environ.update({name: settings[name] for name in wanted})
    hospital = load_hospital_file(args.hospital)
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

    from sotong.complaints.classify import classifier_for, evaluate, read_labelled
    from sotong.config import ConfigError, load_hospital_file
    from sotong.config.loader import CONFIG_PATH_ENV

    path = args.hospital or os.environ.get(CONFIG_PATH_ENV) or "hospitals/demo.yaml"
    try:
        hospital = load_hospital_file(path)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 2
    classifier = classifier_for(hospital)
    if args.evaluate:
        for number, labelled in enumerate(args.evaluate):
            try:
                items = read_labelled(labelled, list(hospital.complaints.categories))
            except (OSError, ValueError) as error:
                print(error, file=sys.stderr)
                return 2
            print(("\n" if number else "") + f"{labelled} (hospital {hospital.hospital_id}):")
            print(evaluate(classifier, items).render())
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


def _local(args: argparse.Namespace) -> int:
    # The local stack's commands live beside it; they are dev tools, not part of the layer.
    from sotong_local import commands

    result: int = commands.main(args.local_command, args.rest)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sotong", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check hospital config files")
    validate.add_argument("files", nargs="+", help="hospital YAML/JSON files")
    validate.set_defaults(run=_validate)

    replay = sub.add_parser(
        "replay-dlq", help="put dead-lettered message requests back on the notification queue"
    )
    replay.add_argument("--hospital", default="hospitals/demo.yaml", help="hospital config file")
    replay.add_argument("--stack", help="read queue URLs and table names from this stack's outputs")
    replay.add_argument("--limit", type=int, default=1000)
    replay.set_defaults(run=_replay)

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
    classify.set_defaults(run=_classify)

    for name, help_text in (
        ("outbox", "show what the local sandbox provider sent (as patients would see it)"),
        ("schedule", "run a scheduled function of the running local stack now"),
        ("token", "print a local staff sign-in token for the local stack"),
    ):
        local = sub.add_parser(name, help=help_text, add_help=False)
        local.add_argument("rest", nargs=argparse.REMAINDER)
        local.set_defaults(run=_local, local_command=name)
    return parser


LOCAL_COMMANDS = ("outbox", "schedule", "token")


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
