"""Least privilege in the synthesized policies (issue 9): every function's DynamoDB statements are
exactly its grants in `sotong.resources`, no Scan anywhere, no table-wide delete for the API
functions, LeadingKeys on what the internet reaches, each function's secrets exactly its own, and
the hash-key secret generated, encrypted with the stack's key and retained.

The expectations come from `sotong.resources` where they can; the facts that matter most are
also pinned here literally, so that loosening resources.py by accident fails a test."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from infra.constructs.functions import secret_refs
from infra.permissions import permissions_table
from sotong import keys
from sotong.resources import FUNCTIONS, HASH_KEY_ENV, MAIN, TABLES, Function, function
from tests.infra import cfn
from tests.infra.conftest import HOSPITAL, REPO, Synth

pytestmark = pytest.mark.infra

API_FUNCTIONS = ("public_api", "staff_api", "recall_api", "provider_webhook")
INTERNET_FACING = ("public_api", "provider_webhook")
TABLE_WIDE_WRITES = {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:ap-northeast-2:${AWS::AccountId}:secret:"
# What each function may do to the records table, pinned: (actions on the table, indexes).
PINNED: dict[str, tuple[set[str], set[str]]] = {
    "public_api": ({"GetItem", "PutItem", "UpdateItem"}, {"gsi3"}),
    "staff_api": (
        {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        {"gsi1", "gsi3", "gsi4"},
    ),
    "recall_api": (
        {
            "GetItem",
            "BatchGetItem",
            "Query",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "BatchWriteItem",
        },
        {"gsi1", "gsi2", "gsi3", "gsi4"},  # gsi4: the replies waiting, `REPLIES#*` only
    ),
    "provider_webhook": (
        {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem"},
        {"gsi3"},
    ),
    "notification_sender": ({"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem"}, set()),
    "email_events": ({"GetItem", "PutItem", "UpdateItem"}, set()),
    "outbox_relay": ({"BatchWriteItem"}, set()),
    "provider_balance": (set(), set()),  # reads the provider's balance: no table at all
}
PINNED_SECRETS = {
    "notification_sender": {"sotong/demo/solapi", "sotong/demo/kakao"},
    "provider_webhook": {"sotong/demo/webhook"},
    "provider_balance": {"sotong/demo/solapi"},  # the API key, for GET /cash/v1/balance
}


def _id(spec: Function) -> str:
    return spec.name


def _statements(synth: Synth, spec: Function) -> list[dict[str, Any]]:
    _, resource = cfn.function(synth.template, spec, HOSPITAL)
    return cfn.statements(synth.template, cfn.role_id(resource))


def _dynamodb(synth: Synth, spec: Function) -> list[dict[str, Any]]:
    """The statements on tables and indexes (not the stream's, which the event source adds)."""
    table = cfn.table_id(synth.template, MAIN)
    return [
        s
        for s in _statements(synth, spec)
        if any(a.startswith("dynamodb:") for a in cfn.actions(s))
        and all(cfn.render(r).startswith(f"${{{table}.Arn}}") for r in cfn.as_list(s["Resource"]))
    ]


def _where(statement: dict[str, Any]) -> str | None:
    """None for the table itself, else the index a statement is on."""
    (resource,) = cfn.as_list(statement["Resource"])
    rest = cfn.render(resource).split("}", 1)[1]
    return rest.removeprefix("/index/") or None


def _leading_keys(statement: dict[str, Any]) -> list[str] | None:
    condition = statement.get("Condition")
    if condition is None:
        return None
    assert set(condition) == {"ForAllValues:StringLike"}, condition
    (keys_,) = condition["ForAllValues:StringLike"].values()
    assert set(condition["ForAllValues:StringLike"]) == {"dynamodb:LeadingKeys"}
    return list(keys_)


def _secret_arns(statements: list[dict[str, Any]], sid: str) -> set[str]:
    return {
        cfn.render(r) for s in statements if s.get("Sid") == sid for r in cfn.as_list(s["Resource"])
    }


def _hash_key_id(synth: Synth) -> str:
    logical_id, _ = cfn.only(cfn.of_type(synth.template, "AWS::SecretsManager::Secret"), "secret")
    return logical_id


# -- DynamoDB -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_dynamodb_statements_are_exactly_the_grants(synth: Synth, spec: Function) -> None:
    found = sorted(
        (_where(s) or "", tuple(cfn.actions(s)), tuple(_leading_keys(s) or ()))
        for s in _dynamodb(synth, spec)
    )
    expected = sorted(
        (g.index or "", tuple(f"dynamodb:{a}" for a in g.actions), tuple(g.keys or ()))
        for g in spec.data
    )
    assert found == expected


def test_no_function_may_scan_or_describe(synth: Synth) -> None:
    for spec in FUNCTIONS:
        for statement in _statements(synth, spec):
            for action in cfn.actions(statement):
                assert action not in ("dynamodb:Scan", "dynamodb:*", "*"), (spec.name, action)
                assert action != "dynamodb:DescribeTable", spec.name


def test_no_scan_in_the_code_functions_run() -> None:
    """No request or scheduled path reads a whole table (the local restore drill may)."""
    roots = [REPO / "functions", REPO / "layers" / "shared" / "python" / "sotong"]
    scan = re.compile(r"\.scan\(|get_paginator\(\s*[\"']scan[\"']")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for root in roots
        for path in root.rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if scan.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("name", API_FUNCTIONS)
def test_api_functions_have_no_table_wide_delete_unless_they_must(synth: Synth, name: str) -> None:
    spec = function(name)
    for statement in _dynamodb(synth, spec):
        wide = TABLE_WIDE_WRITES & set(cfn.actions(statement))
        if wide and _leading_keys(statement) is None:
            # only the erasure route may delete anywhere, and resources.py says why
            assert name == "recall_api", (name, wide)
            (grant,) = [g for g in spec.data if {f"dynamodb:{a}" for a in g.actions} >= wide]
            assert "erasure" in grant.why
    scoped = [
        (_leading_keys(s), set(cfn.actions(s)))
        for s in _dynamodb(synth, spec)
        if TABLE_WIDE_WRITES & set(cfn.actions(s))
    ]
    if name == "staff_api":
        assert scoped == [(["SENDER#*"], {"dynamodb:DeleteItem"})]
    if name in INTERNET_FACING:
        assert scoped == []


@pytest.mark.parametrize("name", INTERNET_FACING)
def test_internet_facing_functions_carry_leading_keys(synth: Synth, name: str) -> None:
    statements = _dynamodb(synth, function(name))
    assert statements
    for statement in statements:
        keys_ = _leading_keys(statement)
        assert keys_, f"{name}: {statement} has no LeadingKeys condition"
        assert all(re.fullmatch(r"[A-Z]+#\*|[A-Z]+", k) for k in keys_), keys_


def test_public_api_reaches_complaints_and_counters_only(synth: Synth) -> None:
    by_place = {
        _where(s): (set(cfn.actions(s)), set(_leading_keys(s) or ()))
        for s in _dynamodb(synth, function("public_api"))
    }
    assert by_place == {
        None: (
            {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
            {"CMP#*", "CONTACT#*", "CONSENT#*", "TXOUT#*", "LIMIT#*", "TRACKFAIL#*"},
        ),
        "gsi3": ({"dynamodb:Query"}, {"TRACK#*"}),
    }


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_actions_and_indexes(synth: Synth, name: str) -> None:
    table_actions: set[str] = set()
    indexes: set[str] = set()
    for statement in _dynamodb(synth, function(name)):
        where = _where(statement)
        if where is None:
            table_actions |= {a.removeprefix("dynamodb:") for a in cfn.actions(statement)}
        else:
            assert cfn.actions(statement) == ["dynamodb:Query"]
            indexes.add(where)
    assert (table_actions, indexes) == PINNED[name]


def test_grant_allows_as_iam_decides() -> None:
    public = function("public_api")
    assert public.allows("GetItem", "records", None, "CMP#c1")
    assert not public.allows("GetItem", "records", None, "PAT#p1")
    assert not public.allows("DeleteItem", "records", None, "CMP#c1")
    assert public.allows("Query", "records", "gsi3", "TRACK#ABCD1234")
    assert not public.allows("Query", "records", "gsi3", "PHONE#abc")  # a patient by phone
    assert not public.allows("Query", "records", "gsi1", "INBOX#x#open")
    assert function("recall_dispatcher").allows("DeleteItem", "records", None, "LEASE")
    assert not function("recall_dispatcher").allows("DeleteItem", "records", None, "LEASE#x")


def test_no_idempotency_table(synth: Synth) -> None:
    assert [t.name for t in TABLES] == ["records"]
    tables = cfn.of_type(synth.template, "AWS::DynamoDB::GlobalTable")
    assert len(tables) == 1
    text = str(synth.template).lower()
    assert "idempotency" not in text.replace("idempotency-key", "")


# -- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_each_function_reads_exactly_its_secrets(synth: Synth, spec: Function) -> None:
    statements = _statements(synth, spec)
    secret_actions = [
        s for s in statements if any(a.startswith("secretsmanager:") for a in cfn.actions(s))
    ]
    for statement in secret_actions:
        assert cfn.actions(statement) == ["secretsmanager:GetSecretValue"]
    expected = {f"{SECRET_ARN}{ref.secret}-??????" for ref in secret_refs(synth.config, spec)}
    assert _secret_arns(statements, "ReadHospitalSecrets") == expected
    hash_key = {"${" + _hash_key_id(synth) + "}"} if spec.hash_key else set()
    assert _secret_arns(statements, "ReadHashKey") == hash_key
    assert {s.get("Sid") for s in secret_actions} <= {"ReadHospitalSecrets", "ReadHashKey"}


def test_pinned_hospital_secrets(synth: Synth) -> None:
    for spec in FUNCTIONS:
        arns = _secret_arns(_statements(synth, spec), "ReadHospitalSecrets")
        names = {arn.removeprefix(SECRET_ARN).removesuffix("-??????") for arn in arns}
        assert names == PINNED_SECRETS.get(spec.name, set()), spec.name


def test_hash_key_secret_is_generated_encrypted_and_retained(synth: Synth) -> None:
    logical_id = _hash_key_id(synth)
    secret = synth.template["Resources"][logical_id]
    assert secret["DeletionPolicy"] == "Retain"
    assert secret["UpdateReplacePolicy"] == "Retain"
    properties = secret["Properties"]
    assert properties["KmsKeyId"] == cfn.arn(cfn.key_id(synth.template))
    generated = properties["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32
    assert "SecretString" not in properties
    rules = {r["id"]: r["reason"] for r in secret["Metadata"]["cdk_nag"]["rules_to_suppress"]}
    assert "orphan" in rules["AwsSolutions-SMG4"]


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_hash_key_env_and_decrypt_only_where_declared(synth: Synth, spec: Function) -> None:
    _, resource = cfn.function(synth.template, spec, HOSPITAL)
    environment = resource["Properties"]["Environment"]["Variables"]
    statements = _statements(synth, spec)
    decrypt = [s for s in statements if s.get("Sid") == "DecryptHashKey"]
    if spec.hash_key:
        assert environment[HASH_KEY_ENV] == cfn.ref(_hash_key_id(synth))
        (statement,) = decrypt
        assert cfn.actions(statement) == ["kms:Decrypt"]
        assert statement["Resource"] == cfn.arn(cfn.key_id(synth.template))
        condition = statement["Condition"]["StringEquals"]
        assert condition["kms:ViaService"] == "secretsmanager.ap-northeast-2.amazonaws.com"
        assert condition["kms:EncryptionContext:SecretARN"] == cfn.ref(_hash_key_id(synth))
    else:
        assert HASH_KEY_ENV not in environment
        assert decrypt == []


def test_the_functions_that_key_digests_get_the_key() -> None:
    keyed = {spec.name for spec in FUNCTIONS if spec.hash_key}
    # every function that handles a phone number, an e-mail address or a cursor
    assert keyed >= {
        "public_api",
        "staff_api",
        "recall_api",
        "provider_webhook",
        "notification_sender",
        "email_events",
        "complaint_reviewer",
    }
    assert keyed.isdisjoint({"outbox_relay", "outbox_sweeper", "notification_release"})
    # sotong.keys reads the variable the stack sets
    assert HASH_KEY_ENV == "SOTONG_HASH_KEY_SECRET"
    assert f'"{HASH_KEY_ENV}"' in inspect.getsource(keys)


def test_the_doc_table_matches_resources() -> None:
    text = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    assert permissions_table() in text, "docs/security.md is stale: python -m infra.permissions"


def test_the_balance_check_touches_no_table_queue_or_key_digest(synth: Synth) -> None:
    spec = function("provider_balance")
    assert (spec.data, spec.sends_to, spec.hash_key) == ((), (), False)
    _, resource = cfn.function(synth.template, spec, HOSPITAL)
    environment = resource["Properties"]["Environment"]["Variables"]
    assert not any(name.endswith(("_TABLE", "_QUEUE_URL", "_DLQ_URL")) for name in environment)
    actions = {a for s in _statements(synth, spec) for a in cfn.actions(s)}
    # (its on-failure destination, the async-failures queue, is the only SQS it may write to)
    assert not any(a.startswith(("dynamodb:", "ses:", "bedrock:")) for a in actions)
