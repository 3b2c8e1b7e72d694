"""The demo hospital's template holds what sotong.resources defines, configured safely."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.app import pinned_powertools
from infra.constructs.functions import secret_refs
from infra.naming import pascal, physical
from sotong.config.loader import load_hospital_file
from sotong.resources import (
    FUNCTIONS,
    QUEUES,
    ROUTES,
    TABLES,
    Function,
    Queue,
    Route,
    Table,
    sender_concurrency,
)
from tests.infra import cfn
from tests.infra.conftest import HOSPITAL, Synth

pytestmark = pytest.mark.infra

TWO_YEARS_DAYS = 731
DYNAMODB_STREAM_READS = {"dynamodb:GetRecords", "dynamodb:GetShardIterator"}


def _id(item: Table | Queue | Function | Route) -> str:
    return f"{item.method} {item.path}" if isinstance(item, Route) else item.name


# -- encryption ---------------------------------------------------------------------------------


def test_one_customer_managed_key_with_rotation_is_retained(template: Template) -> None:
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": Match.object_like({"EnableKeyRotation": True}),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_key_policy_lets_cloudwatch_logs_of_the_region_use_the_key(synth: Synth) -> None:
    _, key = cfn.only(cfn.of_type(synth.template, "AWS::KMS::Key"), "key")
    logs = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal", {}).get("Service") == "logs.ap-northeast-2.amazonaws.com"
    ]
    assert len(logs) == 1
    condition = logs[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert cfn.render(condition).endswith(":logs:ap-northeast-2:${AWS::AccountId}:log-group:*")


def test_every_log_group_is_encrypted_and_kept_two_years(synth: Synth) -> None:
    key = cfn.key_id(synth.template)
    groups = cfn.of_type(synth.template, "AWS::Logs::LogGroup")
    for logical_id, group in groups.items():
        waf = "aws-waf-logs-" in json.dumps(group["Properties"].get("LogGroupName"))
        expected = 90 if waf else TWO_YEARS_DAYS  # WAF: blocked requests only, 90 days
        assert group["Properties"]["RetentionInDays"] == expected, logical_id
        assert group["Properties"]["KmsKeyId"] == cfn.arn(key), logical_id
        assert group["DeletionPolicy"] == "Retain", logical_id


# -- tables -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TABLES, ids=_id)
def test_table_matches_its_definition(synth: Synth, spec: Table) -> None:
    logical_id = cfn.table_id(synth.template, spec)
    table = synth.template["Resources"][logical_id]
    properties = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert properties["BillingMode"] == "PAY_PER_REQUEST"

    expected_keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        expected_keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    assert properties["KeySchema"] == expected_keys
    assert {a["AttributeType"] for a in properties["AttributeDefinitions"]} == {"S"}
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": spec.ttl_attribute,
        "Enabled": True,
    }
    indexes = {index["IndexName"]: index for index in properties.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {index.name for index in spec.indexes}
    for index in spec.indexes:
        assert indexes[index.name]["KeySchema"] == [
            {"AttributeName": index.partition_key, "KeyType": "HASH"},
            {"AttributeName": index.sort_key, "KeyType": "RANGE"},
        ]
        assert indexes[index.name]["Projection"] == {"ProjectionType": "ALL"}

    assert properties["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    (replica,) = properties["Replicas"]
    assert replica["Region"] == "ap-northeast-2"
    assert replica["DeletionProtectionEnabled"] is True
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert replica["SSESpecification"] == {"KMSMasterKeyId": cfn.arn(cfn.key_id(synth.template))}


# -- queues -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", QUEUES, ids=_id)
def test_queue_has_its_dead_letter_queue(synth: Synth, spec: Queue) -> None:
    queue_id, dlq_id = cfn.queue_ids(synth.template, spec, HOSPITAL)
    queue = synth.template["Resources"][queue_id]["Properties"]
    dlq = synth.template["Resources"][dlq_id]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": cfn.arn(dlq_id),
        "maxReceiveCount": spec.max_receive_count,
    }
    assert queue["VisibilityTimeout"] == spec.visibility_timeout_s
    assert queue["MessageRetentionPeriod"] == spec.retention_days * 86400
    assert dlq["MessageRetentionPeriod"] == spec.dlq_retention_days * 86400
    assert "RedrivePolicy" not in dlq


def test_every_queue_is_encrypted_with_the_key_and_refuses_plain_http(synth: Synth) -> None:
    key = cfn.key_id(synth.template)
    queues = cfn.of_type(synth.template, "AWS::SQS::Queue")
    policies = cfn.of_type(synth.template, "AWS::SQS::QueuePolicy").values()
    for logical_id, queue in queues.items():
        assert queue["Properties"]["KmsMasterKeyId"] == cfn.arn(key), logical_id
        denies = [
            statement
            for policy in policies
            if cfn.ref(logical_id) in policy["Properties"]["Queues"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{logical_id} accepts requests without TLS"


# -- functions ----------------------------------------------------------------------------------


def _expected_environment(template: dict[str, Any], spec: Function) -> dict[str, Any]:
    environment: dict[str, Any] = {
        "SOTONG_HOSPITAL_ID": HOSPITAL,
        "POWERTOOLS_SERVICE_NAME": spec.name,
        "POWERTOOLS_METRICS_NAMESPACE": "Sotong",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
    for table in TABLES:
        if table.name in spec.tables:
            environment[table.env] = cfn.ref(cfn.table_id(template, table))
    for queue in QUEUES:
        queue_id, dlq_id = cfn.queue_ids(template, queue, HOSPITAL)
        if queue.name in spec.sends_to or (spec.trigger and spec.trigger.queue == queue.name):
            environment[queue.env] = cfn.ref(queue_id)
        if queue.name in spec.reads_dlqs_of:
            environment[queue.dlq_env] = cfn.ref(dlq_id)
    if spec.sends_email:
        environment["SOTONG_SES_CONFIGURATION_SET"] = f"sotong-{HOSPITAL}-email"
    if spec.hash_key:
        (secret,) = cfn.of_type(template, "AWS::SecretsManager::Secret")
        environment["SOTONG_HASH_KEY_SECRET"] = cfn.ref(secret)
    return environment


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_function_matches_its_definition(synth: Synth, spec: Function) -> None:
    _, function = cfn.function(synth.template, spec, HOSPITAL)
    properties = function["Properties"]
    assert properties["Runtime"] == "python3.14"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == spec.handler
    assert properties["MemorySize"] == spec.memory_mb
    assert properties["Timeout"] == spec.timeout_s
    assert properties["Environment"]["Variables"] == _expected_environment(synth.template, spec)

    log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
    assert synth.template["Resources"][log_group]["Properties"]["RetentionInDays"] == 731


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_function_has_the_three_layers(synth: Synth, spec: Function) -> None:
    _, function = cfn.function(synth.template, spec, HOSPITAL)
    shared, powertools, config = function["Properties"]["Layers"]
    layers = cfn.of_type(synth.template, "AWS::Lambda::LayerVersion")
    assert layers[shared["Ref"]]["Properties"]["Description"].startswith("sotong shared")
    assert layers[config["Ref"]]["Properties"]["Description"].startswith("validated hospital")
    # what is deployed is what is tested: the layer of the Powertools the tests import
    tested = importlib.metadata.version("aws-lambda-powertools")
    assert pinned_powertools() == tested
    assert powertools == (
        f"{{{{resolve:ssm:/aws/service/powertools/python/arm64/python3.14/{tested}}}}}"
    )


def test_every_function_has_its_own_role_without_managed_policies(synth: Synth) -> None:
    roles = [cfn.role_id(cfn.function(synth.template, spec, HOSPITAL)[1]) for spec in FUNCTIONS]
    assert len(set(roles)) == len(FUNCTIONS)
    for role in roles:
        properties = synth.template["Resources"][role]["Properties"]
        assert properties["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
            }
        ]
        assert "ManagedPolicyArns" not in properties


def test_queue_triggers_report_partial_batch_failures(synth: Synth) -> None:
    mappings = list(cfn.of_type(synth.template, "AWS::Lambda::EventSourceMapping").values())
    triggered = [spec for spec in FUNCTIONS if spec.trigger]
    streamed = [spec for spec in FUNCTIONS if spec.stream]
    assert len(mappings) == len(triggered) + len(streamed)
    for spec in triggered:
        assert spec.trigger is not None
        function_id, _ = cfn.function(synth.template, spec, HOSPITAL)
        queue_id, _ = cfn.queue_ids(
            synth.template, next(q for q in QUEUES if q.name == spec.trigger.queue), HOSPITAL
        )
        (mapping,) = [
            m for m in mappings if m["Properties"]["FunctionName"] == cfn.ref(function_id)
        ]
        properties = mapping["Properties"]
        assert properties["EventSourceArn"] == cfn.arn(queue_id)
        assert properties["BatchSize"] == spec.trigger.batch_size
        assert properties.get("MaximumBatchingWindowInSeconds", 0) == (
            spec.trigger.max_batching_window_s
        )
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        rate = synth.config.sender.rate_per_second
        concurrency = properties.get("ScalingConfig", {}).get("MaximumConcurrency")
        assert concurrency == sender_concurrency(rate, spec.trigger)
        assert concurrency is None or concurrency >= 2


@pytest.mark.parametrize("name", [s.name for s in FUNCTIONS if s.stream])
def test_stream_consumers_read_only_their_items(synth: Synth, name: str) -> None:
    mappings = list(cfn.of_type(synth.template, "AWS::Lambda::EventSourceMapping").values())
    (spec,) = [s for s in FUNCTIONS if s.name == name]
    assert spec.stream is not None
    function_id, _ = cfn.function(synth.template, spec, HOSPITAL)
    (mapping,) = [m for m in mappings if m["Properties"]["FunctionName"] == cfn.ref(function_id)]
    properties = mapping["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == spec.stream.retry_attempts
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    patterns = [json.loads(f["Pattern"]) for f in properties["FilterCriteria"]["Filters"]]
    expected = []
    for key, sort in spec.stream.items:
        keys = {"pk": {"S": [{"prefix": key}]}}
        if sort:
            keys["sk"] = {"S": [{"prefix": sort}]}
        expected.append({"eventName": list(spec.stream.events), "dynamodb": {"Keys": keys}})
    assert patterns == expected
    tables = cfn.of_type(synth.template, "AWS::DynamoDB::GlobalTable")
    streams = [t["Properties"].get("StreamSpecification") for t in tables.values()]
    assert {"StreamViewType": "NEW_IMAGE"} in streams


def test_producers_cannot_reach_the_queue_only_the_relay_can(synth: Synth) -> None:
    senders = {s.name for s in FUNCTIONS if s.sends_to}
    assert senders == {"outbox_relay", "outbox_sweeper"}


def test_function_code_and_layer_assets_leave_out_caches(synth: Synth) -> None:
    assets = [path for path in synth.outdir.glob("asset.*") if path.is_dir()]
    files = [file.relative_to(asset) for asset in assets for file in asset.rglob("*")]
    assert not [file for file in files if "__pycache__" in file.parts or file.suffix == ".pyc"]
    names = {file.as_posix() for file in files}
    assert "public_api.py" in names
    assert "python/sotong/resources.py" in names
    assert "hospital/config.json" in names


def test_config_layer_holds_the_validated_config(synth: Synth) -> None:
    path = synth.build_dir / "hospital-config" / HOSPITAL / "hospital" / "config.json"
    assert json.loads(path.read_text(encoding="utf-8")) == synth.config.model_dump(mode="json")
    assert load_hospital_file(path) == synth.config  # what the functions read at run time


# -- least privilege ----------------------------------------------------------------------------


def _statements(synth: Synth, spec: Function) -> list[dict[str, Any]]:
    return cfn.statements(
        synth.template, cfn.role_id(cfn.function(synth.template, spec, HOSPITAL)[1])
    )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_function_reaches_only_the_data_it_lists(synth: Synth, spec: Function) -> None:
    statements = _statements(synth, spec)
    table_ids = {table.name: cfn.table_id(synth.template, table) for table in TABLES}
    for statement in statements:
        if any(action.startswith("dynamodb:") for action in cfn.actions(statement)):
            for resource in cfn.as_list(statement["Resource"]):
                reached = cfn.render(resource).split("}")[0].removeprefix("${").split(".")[0]
                name = next(name for name, logical_id in table_ids.items() if logical_id == reached)
                assert name in spec.tables, f"{spec.name} reaches table {name}"
                if statement.get("Sid") is None and "StreamArn" not in cfn.render(resource):
                    # the grants' statements (test_least_privilege checks them one by one)
                    declared = {f"dynamodb:{a}" for g in spec.data for a in g.actions}
                    assert set(cfn.actions(statement)) <= declared | DYNAMODB_STREAM_READS

    sent_to = {
        cfn.render(resource)
        for statement in statements
        if "sqs:SendMessage" in cfn.actions(statement)
        for resource in cfn.as_list(statement["Resource"])
    }
    expected = {
        "${" + cfn.queue_ids(synth.template, queue, HOSPITAL)[0] + ".Arn}"
        for queue in QUEUES
        if queue.name in spec.sends_to
    }
    if spec.schedule or spec.event_rule:  # its failed async invocations go to the failures DLQ
        (failures,) = [
            logical_id
            for logical_id, queue in cfn.of_type(synth.template, "AWS::SQS::Queue").items()
            if queue["Properties"].get("QueueName") == f"sotong-{HOSPITAL}-async-failures"
        ]
        expected.add("${" + failures + ".Arn}")
    assert sent_to == expected


@pytest.mark.parametrize("spec", FUNCTIONS, ids=_id)
def test_secrets_and_email_only_where_declared(synth: Synth, spec: Function) -> None:
    statements = _statements(synth, spec)
    secret_statements = [
        s for s in statements if any(a.startswith("secretsmanager:") for a in cfn.actions(s))
    ]
    email_statements = [s for s in statements if any(a.startswith("ses:") for a in cfn.actions(s))]
    hospital = [s for s in secret_statements if s.get("Sid") == "ReadHospitalSecrets"]
    if not spec.secrets:
        assert hospital == []
    else:
        (statement,) = hospital
        assert cfn.actions(statement) == ["secretsmanager:GetSecretValue"]
        expected = {
            "arn:${AWS::Partition}:secretsmanager:ap-northeast-2:${AWS::AccountId}:secret:"
            f"{ref.secret}-??????"
            for ref in secret_refs(synth.config, spec)
        }
        assert {cfn.render(r) for r in cfn.as_list(statement["Resource"])} == expected
    assert {s.get("Sid") for s in secret_statements} <= {"ReadHospitalSecrets", "ReadHashKey"}
    if not spec.sends_email:
        assert email_statements == []
    else:
        (statement,) = email_statements
        assert cfn.actions(statement) == ["ses:SendEmail"]
        sender = synth.config.sender.email_from
        assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": sender}}


def test_public_api_cannot_read_secrets(synth: Synth) -> None:
    """Only the stack's HMAC key (it keys contact pointers and the tracking lock)."""
    spec = next(spec for spec in FUNCTIONS if spec.name == "public_api")
    (secret,) = cfn.of_type(synth.template, "AWS::SecretsManager::Secret")
    assert [
        cfn.render(resource)
        for statement in _statements(synth, spec)
        if any(action.startswith("secretsmanager:") for action in cfn.actions(statement))
        for resource in cfn.as_list(statement["Resource"])
    ] == ["${" + secret + "}"]


def test_no_policy_grants_everything(synth: Synth) -> None:
    for logical_id, policy in cfn.of_type(synth.template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in cfn.actions(statement):
                assert action != "*", logical_id
                assert not action.endswith(":*"), (logical_id, action)
            for resource in cfn.as_list(statement["Resource"]):
                assert resource != "*", (logical_id, statement)


# -- schedules ----------------------------------------------------------------------------------


def test_schedules_run_in_seoul_time_with_retries_and_a_dlq(synth: Synth) -> None:
    schedules = list(cfn.of_type(synth.template, "AWS::Scheduler::Schedule").values())
    scheduled = [spec for spec in FUNCTIONS if spec.schedule]
    assert len(schedules) == len(scheduled)
    for spec in scheduled:
        assert spec.schedule is not None
        function_id, _ = cfn.function(synth.template, spec, HOSPITAL)
        (schedule,) = [
            s for s in schedules if s["Properties"]["Target"]["Arn"] == cfn.arn(function_id)
        ]
        properties = schedule["Properties"]
        assert properties["ScheduleExpression"] == spec.schedule.expression
        assert properties["ScheduleExpressionTimezone"] == spec.schedule.timezone == "Asia/Seoul"
        assert properties["Target"]["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert "Arn" in properties["Target"]["DeadLetterConfig"]
        assert properties["KmsKeyArn"] == cfn.arn(cfn.key_id(synth.template))


# -- API ----------------------------------------------------------------------------------------


def test_api_has_exactly_the_routes(synth: Synth) -> None:
    methods = {key for key in cfn.methods(synth.template) if key[0] != "OPTIONS"}
    assert methods == {(route.method, route.path) for route in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_route_has_its_authorizer_validator_and_function(synth: Synth, route: Route) -> None:
    properties = cfn.methods(synth.template)[route.method, route.path]["Properties"]
    if route.auth == "staff":
        assert properties["AuthorizationType"] == "COGNITO_USER_POOLS"
        authorizer = synth.template["Resources"][properties["AuthorizerId"]["Ref"]]
        assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    else:
        assert properties["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in properties
    validator = synth.template["Resources"][properties["RequestValidatorId"]["Ref"]]
    assert validator["Properties"]["ValidateRequestBody"] is True
    assert validator["Properties"]["ValidateRequestParameters"] is True

    spec = next(spec for spec in FUNCTIONS if spec.name == route.function)
    function_id, _ = cfn.function(synth.template, spec, HOSPITAL)
    assert properties["Integration"]["Type"] == "AWS_PROXY"
    assert f"${{{function_id}.Arn}}" in cfn.render(properties["Integration"]["Uri"])
    parameters = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
    assert properties["RequestParameters"] == {
        f"method.request.path.{name}": True for name in parameters
    }


def test_stage_v1_logs_access_as_json_and_throttles(synth: Synth) -> None:
    _, stage = cfn.only(cfn.of_type(synth.template, "AWS::ApiGateway::Stage"), "stage")
    properties = stage["Properties"]
    assert properties["StageName"] == "v1"

    access = properties["AccessLogSetting"]
    log_group = synth.template["Resources"][access["DestinationArn"]["Fn::GetAtt"][0]]
    assert log_group["Properties"]["RetentionInDays"] == TWO_YEARS_DAYS
    assert "KmsKeyId" in log_group["Properties"]
    fields = json.loads(access["Format"])
    assert {"requestId", "ip", "status", "resourcePath", "staffUser"} <= set(fields)

    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in properties["MethodSettings"]}
    default = settings["/*", "*"]
    assert default["LoggingLevel"] == "ERROR"
    assert default["MetricsEnabled"] is True
    assert default["DataTraceEnabled"] is False
    assert (default["ThrottlingRateLimit"], default["ThrottlingBurstLimit"]) == (50, 100)
    for route in ROUTES:
        if route.auth == "public":
            public = settings["/" + route.path.replace("/", "~1"), route.method]
            assert public["ThrottlingRateLimit"] < default["ThrottlingRateLimit"]
            assert public["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"]
            assert public["LoggingLevel"] == "ERROR"
            assert public["DataTraceEnabled"] is False


def test_api_sits_behind_a_web_acl_with_a_rate_limit(synth: Synth) -> None:
    acl_id, acl = cfn.only(cfn.of_type(synth.template, "AWS::WAFv2::WebACL"), "web ACL")
    assert acl["Properties"]["Scope"] == "REGIONAL"
    rules = acl["Properties"]["Rules"]
    assert any("RateBasedStatement" in rule["Statement"] for rule in rules)
    assert any("ManagedRuleGroupStatement" in rule["Statement"] for rule in rules)
    stage_id, _ = cfn.only(cfn.of_type(synth.template, "AWS::ApiGateway::Stage"), "stage")
    _, association = cfn.only(cfn.of_type(synth.template, "AWS::WAFv2::WebACLAssociation"), "")
    assert association["Properties"]["WebACLArn"] == cfn.arn(acl_id)
    assert cfn.ref(stage_id)["Ref"] in json.dumps(association["Properties"]["ResourceArn"])
    _, logging = cfn.only(cfn.of_type(synth.template, "AWS::WAFv2::LoggingConfiguration"), "")
    assert logging["Properties"]["ResourceArn"] == cfn.arn(acl_id)


# -- staff sign-in ------------------------------------------------------------------------------


def test_staff_user_pool_is_invitation_only_with_mfa(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "MfaConfiguration": "ON",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "UserPoolTier": "PLUS",
            "Policies": {
                "PasswordPolicy": Match.object_like(
                    {
                        "MinimumLength": 12,
                        "RequireLowercase": True,
                        "RequireUppercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                    }
                )
            },
            "Schema": Match.array_with(
                [
                    Match.object_like(
                        {"Name": "department", "AttributeDataType": "String", "Mutable": True}
                    )
                ]
            ),
        },
    )
    groups = {
        g["Properties"]["GroupName"]
        for g in template.find_resources("AWS::Cognito::UserPoolGroup").values()
    }
    # the outside roles' groups; each partner's or agency's own `org-<id>` group is added when
    # the organisation joins (docs/care-network.md), not by the stack
    outside = {"partner", "agency"}
    assert groups == {"cs_admin", "department_staff", "reception", "qi"} | outside | {
        f"dept-{d}"
        for d in (
            "customer_service",
            "dental",
            "dermatology",
            "oncology",
            "front_desk",
            "facilities",
            "qi",
        )
    }
    (client,) = template.find_resources("AWS::Cognito::UserPoolClient").values()
    assert client["Properties"]["GenerateSecret"] is False


def test_a_staff_member_cannot_give_themselves_a_department(template: Template) -> None:
    """Role and department are groups, which only an administrator sets; the client may write
    the user's own name and e-mail only, never `custom:department`."""
    (client,) = template.find_resources("AWS::Cognito::UserPoolClient").values()
    assert sorted(client["Properties"]["WriteAttributes"]) == ["email", "name"]
    assert not any("custom:" in a for a in client["Properties"]["ReadAttributes"])


# -- tags and outputs ---------------------------------------------------------------------------

TAGGED = (
    "AWS::KMS::Key",
    "AWS::DynamoDB::GlobalTable",
    "AWS::SQS::Queue",
    "AWS::Lambda::Function",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Stage",
    "AWS::Cognito::UserPool",
    "AWS::WAFv2::WebACL",
)


@pytest.mark.parametrize("kind", TAGGED)
def test_resources_carry_the_hospital_and_app_tags(synth: Synth, kind: str) -> None:
    resources = cfn.of_type(synth.template, kind)
    assert resources, kind
    for logical_id, resource in resources.items():
        tags = cfn.tags(resource)
        assert tags.get("sotong:hospital") == HOSPITAL, logical_id
        assert tags.get("sotong:app") == "sotong", logical_id


def test_outputs_name_what_operators_need(synth: Synth) -> None:
    outputs = set(synth.template["Outputs"])
    assert {"ApiUrl", "UserPoolId", "UserPoolClientId"} <= outputs
    assert {f"{pascal(table.name)}TableName" for table in TABLES} <= outputs
    assert {f"{pascal(queue.name)}QueueUrl" for queue in QUEUES} <= outputs
    assert {f"{pascal(queue.name)}DlqUrl" for queue in QUEUES} <= outputs


def test_queue_names_come_from_the_definitions(synth: Synth) -> None:
    names = {
        queue["Properties"]["QueueName"]
        for queue in cfn.of_type(synth.template, "AWS::SQS::Queue").values()
    }
    for queue in QUEUES:
        assert {physical(HOSPITAL, queue.name), physical(HOSPITAL, queue.dlq_name)} <= names


def test_email_events_reach_their_function_through_a_rule_on_the_hospitals_set(
    synth: Synth,
) -> None:
    template = synth.template
    sets = cfn.of_type(template, "AWS::SES::ConfigurationSet")
    assert [r["Properties"]["Name"] for r in sets.values()] == [f"sotong-{HOSPITAL}-email"]
    (destination,) = cfn.of_type(template, "AWS::SES::ConfigurationSetEventDestination").values()
    props = destination["Properties"]["EventDestination"]
    assert sorted(props["MatchingEventTypes"]) == ["BOUNCE", "COMPLAINT", "DELIVERY", "REJECT"]
    assert "EventBridgeDestination" in props
    rules = [
        r
        for r in cfn.of_type(template, "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"]["source"] == ["aws.ses"]
    ]
    (rule,) = rules
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail"]["mail"]["tags"]["ses:configuration-set"] == [
        f"sotong-{HOSPITAL}-email"
    ]


def test_the_shared_layer_carries_the_package_and_the_time_zone_database(synth: Synth) -> None:
    python = synth.build_dir / "shared-layer" / "python"
    assert (python / "sotong" / "resources.py").is_file()
    assert (python / "tzdata" / "zoneinfo" / "Asia" / "Seoul").is_file()
    assert not list(python.rglob("__pycache__"))


def test_the_shared_layer_ships_no_tools(synth: Synth) -> None:
    """The command line, the OpenAPI generator and the classifier's evaluation run on an
    operator's machine (local/sotong_local/); no Lambda carries them, nor anything that
    imports the local stack."""
    package = synth.build_dir / "shared-layer" / "python" / "sotong"
    modules = {p.relative_to(package).as_posix(): p for p in package.rglob("*.py")}
    assert "api.py" in modules  # the package is there
    tools = [name for name, p in modules.items() if p.stem in ("cli", "openapi", "evaluation")]
    assert not tools
    assert not [name for name, p in modules.items() if "sotong_local" in p.read_text("utf-8")]


def test_the_shared_layer_carries_the_pinned_holiday_calendar(synth: Synth) -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    python = synth.build_dir / "shared-layer" / "python"
    assert (python / "holidays" / "countries" / "south_korea.py").is_file()
    pins = (Path(__file__).resolve().parents[2] / "requirements" / "runtime.txt").read_text()
    pinned = re.search(r"^holidays==(\S+)", pins, re.MULTILINE)
    assert pinned is not None
    # the layer's copy, imported first (as /opt/python is in Lambda), knows 설날 2027
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import holidays; "
        "print(holidays.__version__, holidays.__file__.startswith(sys.argv[1]), "
        "sorted(str(d) for d in holidays.KR(years=2027) if d.month == 2))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(python)], capture_output=True, text=True, check=True
    ).stdout.split(" ", 2)
    assert out[:2] == [pinned.group(1), "True"]
    assert "2027-02-09" in out[2]  # the substitute holiday for 설날 on a Sunday
