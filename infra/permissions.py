"""The per-function permissions table of docs/security.md, generated from `sotong.resources`.

`python -m infra.permissions` prints it; tests/infra/test_least_privilege.py checks the doc holds
exactly this text.
"""

from __future__ import annotations

from sotong.resources import FUNCTIONS, Function, Grant

HEADER = (
    "| Function | Invoked by | DynamoDB on the table | Query on indexes | Hospital secrets "
    "| HMAC key |\n"
    "|---|---|---|---|---|---|\n"
)


def _invoked_by(spec: Function) -> str:
    if spec.trigger:
        return f"SQS `{spec.trigger.queue}`"
    if spec.stream:
        return f"stream `{spec.stream.table}`"
    if spec.schedule:
        return f"schedule `{spec.schedule.expression}`"
    if spec.event_rule:
        return f"EventBridge `{spec.event_rule.source}`"
    return "API Gateway"


def _keys(grant: Grant) -> str:
    return " on " + ", ".join(f"`{k}`" for k in grant.keys) if grant.keys else ""


def _table(spec: Function) -> str:
    grants = [g for g in spec.data if g.index is None]
    return "; ".join(", ".join(g.actions) + _keys(g) for g in grants) or "-"


def _indexes(spec: Function) -> str:
    grants = [g for g in spec.data if g.index is not None]
    return ", ".join(f"{g.index}{_keys(g)}" for g in grants) or "-"


def permissions_table() -> str:
    rows = [
        f"| `{spec.name}` | {_invoked_by(spec)} | {_table(spec)} | {_indexes(spec)} "
        f"| {', '.join(f'`{s}`' for s in spec.secrets) or '-'} "
        f"| {'yes' if spec.hash_key else '-'} |"
        for spec in FUNCTIONS
    ]
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(permissions_table(), end="")
