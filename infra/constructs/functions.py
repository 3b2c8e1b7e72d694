"""Lambda functions from `sotong.resources.FUNCTIONS`, each with its own role and log group."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.data import Tables
from infra.constructs.email import configuration_set_name
from infra.constructs.queues import Queues
from infra.nag import acknowledge
from infra.naming import pascal, physical
from sotong.complaints import rulebook
from sotong.complaints.classify import BEDROCK_MODEL_ENV
from sotong.config.schema import HospitalConfig
from sotong.notify.providers.factory import SES_CONFIGURATION_SET_ENV
from sotong.resources import (
    FUNCTIONS,
    Function,
    StreamTrigger,
    queue,
    sender_concurrency,
    table,
)

REPO = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
ASSET_EXCLUDE = ["__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache"]
LOG_RETENTION = logs.RetentionDays.TWO_YEARS  # PIPA: access logs of sensitive data, 2 years
POWERTOOLS_ACCOUNT = "017000801446"
METRICS_NAMESPACE = "Sotong"


def build_shared_layer(build_dir: Path) -> Path:
    """The shared layer's asset: the `sotong` package from layers/shared plus the pinned tzdata
    wheel's package (zoneinfo needs a time-zone database the runtime image may lack)."""
    import tzdata  # type: ignore[import-untyped]

    target = build_dir / "shared-layer"
    if target.exists():
        shutil.rmtree(target)
    ignore = shutil.ignore_patterns(*ASSET_EXCLUDE)
    shutil.copytree(REPO / "layers" / "shared" / "python", target / "python", ignore=ignore)
    shutil.copytree(Path(tzdata.__file__).parent, target / "python" / "tzdata", ignore=ignore)
    return target


def write_config_layer(config: HospitalConfig, build_dir: Path) -> Path:
    """Write the validated config where the layer puts it at run time: /opt/hospital/config.json."""
    layer_dir = build_dir / "hospital-config" / config.hospital_id
    target = layer_dir / "hospital" / "config.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True)
    target.write_text(text + "\n", encoding="utf-8")
    # the shipped rules merged with the hospital's: functions read JSON, never YAML
    book = rulebook.checked(config, f"hospitals/{config.hospital_id}")
    (target.parent / "rules.json").write_text(book.to_json(), encoding="utf-8")
    return layer_dir


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HospitalConfig,
        key: kms.IKey,
        tables: Tables,
        queues: Queues,
        powertools_layer_version: int,
        config_layer_dir: Path,
        build_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._key = key
        self._tables = tables
        self._queues = queues
        stack = Stack.of(self)
        self.layers: list[lambda_.ILayerVersion] = [
            lambda_.LayerVersion(
                self,
                "SharedLayer",
                description="sotong shared package (layers/shared)",
                code=lambda_.Code.from_asset(str(build_shared_layer(build_dir))),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
            ),
            lambda_.LayerVersion.from_layer_version_arn(
                self,
                "PowertoolsLayer",
                f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_ACCOUNT}:layer:"
                f"AWSLambdaPowertoolsPythonV3-python314-arm64:{powertools_layer_version}",
            ),
            lambda_.LayerVersion(
                self,
                "ConfigLayer",
                description=f"validated hospital config of {config.hospital_id}",
                code=lambda_.Code.from_asset(str(config_layer_dir)),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
            ),
        ]
        self._code = lambda_.Code.from_asset(str(REPO / "functions"), exclude=ASSET_EXCLUDE)
        self.by_name: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        for spec in FUNCTIONS:
            self.by_name[spec.name] = self._function(spec)

    def _function(self, spec: Function) -> lambda_.Function:
        hospital_id = self._config.hospital_id
        construct_id = pascal(spec.name)
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=LOG_RETENTION,
            encryption_key=self._key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Sotong {hospital_id} {spec.name}: only what sotong.resources lists",
        )
        log_group.grant_write(role)
        environment = {
            "SOTONG_HOSPITAL_ID": hospital_id,
            "POWERTOOLS_SERVICE_NAME": spec.name,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        environment.update(self._grant_data(spec, role))
        if spec.reads_secrets:
            self._grant_secrets(role)
        if spec.sends_email:
            self._grant_email(role)
            environment[SES_CONFIGURATION_SET_ENV] = configuration_set_name(hospital_id)
        model_id = self._config.complaints.bedrock_model_id
        if spec.uses_bedrock and model_id:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["bedrock:InvokeModel"],
                    resources=[
                        Stack.of(self).format_arn(
                            service="bedrock",
                            account="",
                            resource="foundation-model",
                            resource_name=model_id,
                        )
                    ],
                )
            )
            environment[BEDROCK_MODEL_ENV] = model_id

        function = lambda_.Function(
            self,
            construct_id,
            function_name=physical(hospital_id, spec.name),
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=self._code,
            handler=spec.handler,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            role=role,
            log_group=log_group,
            layers=self.layers,
            environment=environment,
        )
        if spec.trigger:
            trigger = self._queues.by_name[spec.trigger.queue]
            function.add_event_source(
                sources.SqsEventSource(
                    trigger,
                    batch_size=spec.trigger.batch_size,
                    max_batching_window=(
                        Duration.seconds(spec.trigger.max_batching_window_s)
                        if spec.trigger.max_batching_window_s
                        else None
                    ),
                    report_batch_item_failures=True,
                    max_concurrency=sender_concurrency(
                        self._config.sender.rate_per_second, spec.trigger
                    ),
                )
            )
        if spec.stream:
            self._add_stream(function, spec.stream)
        self._depend_on_policy_only(function, role)
        self.roles[spec.name] = role
        self._acknowledge(spec, function, role)
        return function

    def _add_stream(self, function: lambda_.Function, stream: StreamTrigger) -> None:
        """Items of the stream's key prefixes only; a failing record is retried from where it
        failed, split on errors; what still fails is left to the sweeper."""
        data = self._tables.by_name[stream.table]
        function.add_event_source(
            sources.DynamoEventSource(
                data,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=stream.batch_size,
                max_batching_window=Duration.seconds(stream.max_batching_window_s),
                retry_attempts=stream.retry_attempts,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                max_record_age=Duration.hours(1),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.or_(*stream.events),
                            "dynamodb": {
                                "Keys": {
                                    "pk": {"S": lambda_.FilterRule.begins_with(key)},
                                    **(
                                        {"sk": {"S": lambda_.FilterRule.begins_with(sort)}}
                                        if sort
                                        else {}
                                    ),
                                }
                            },
                        }
                    )
                    for key, sort in stream.items
                ],
            )
        )

    @staticmethod
    def _depend_on_policy_only(function: lambda_.Function, role: iam.Role) -> None:
        # CDK makes the function depend on its role and the role's policy. The role dependency
        # is implied by the GetAtt of its ARN already (cfn-lint W3005); the policy one is needed
        # so that the permissions exist before the function and its event sources do.
        policy = role.node.find_child("DefaultPolicy").node.default_child
        function_resource = function.node.default_child
        assert isinstance(policy, iam.CfnPolicy)
        assert isinstance(function_resource, lambda_.CfnFunction)
        function_resource.add_override("DependsOn", [Stack.of(function).get_logical_id(policy)])

    def _grant_data(self, spec: Function, role: iam.IRole) -> dict[str, str]:
        """Grant exactly the tables and queues `spec` lists; return their environment variables."""
        environment: dict[str, str] = {}
        for name, access in spec.tables.items():
            data = self._tables.by_name[name]
            if access == "read":
                data.grant_read_data(role)
            else:
                data.grant_read_write_data(role)
            environment[table(name).env] = data.table_name
        for name in spec.sends_to:
            self._queues.by_name[name].grant_send_messages(role)
            environment[queue(name).env] = self._queues.by_name[name].queue_url
        for name in spec.reads_dlqs_of:
            self._queues.dlq_by_name[name].grant_consume_messages(role)
            environment[queue(name).dlq_env] = self._queues.dlq_by_name[name].queue_url
        if spec.trigger:
            # SqsEventSource grants the consume permissions; the URL is for returning messages.
            environment[queue(spec.trigger.queue).env] = self._queues.by_name[
                spec.trigger.queue
            ].queue_url
        return environment

    def _grant_secrets(self, role: iam.Role) -> None:
        arns = sorted({self._secret_arn(ref.secret) for ref in self._config.secret_refs()})
        if arns:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadHospitalSecrets",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=arns,
                )
            )

    def _secret_arn(self, secret: str) -> str:
        if secret.startswith("arn:"):
            return secret
        # Secrets Manager appends six random characters to the name of every secret's ARN.
        return Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{secret}-??????",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _grant_email(self, role: iam.Role) -> None:
        sender = self._config.sender.email_from
        domain = sender.rsplit("@", 1)[1]
        stack = Stack.of(self)
        # SES authorizes against whichever identity is verified: the address or its domain.
        identities = [
            stack.format_arn(service="ses", resource="identity", resource_name=name)
            for name in (sender, domain)
        ]
        identities.append(
            stack.format_arn(
                service="ses",
                resource="configuration-set",
                resource_name=configuration_set_name(self._config.hospital_id),
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="SendEmailFromHospitalAddress",
                actions=["ses:SendEmail"],
                resources=identities,
                conditions={"StringEquals": {"ses:FromAddress": sender}},
            )
        )

    def _acknowledge(self, spec: Function, function: lambda_.Function, role: iam.Role) -> None:
        invoked_by = (
            f"SQS ({spec.trigger.queue}); failed messages go to its dead-letter queue"
            if spec.trigger
            else "the table's DynamoDB stream, retried from the failed record and then left to "
            "the outbox sweeper, which publishes every item still pending"
            if spec.stream
            else "EventBridge Scheduler, whose dead-letter queue catches failed invocations, "
            "and a failed run is repeated by the next scheduled run"
            if spec.schedule
            else "API Gateway synchronously, so the caller sees every failure"
        )
        acknowledge(
            function,
            {
                "HIPAA.Security-LambdaDLQ": (
                    f"{spec.name} is invoked by {invoked_by}; a function-level DLQ would never "
                    "receive anything"
                ),
                "HIPAA.Security-LambdaInsideVPC": (
                    "The function talks only to AWS public endpoints (DynamoDB, SQS, Secrets "
                    "Manager, SES) and the messaging provider's HTTPS API; there is no VPC "
                    "resource to reach, and a NAT per hospital adds cost without narrowing access"
                ),
                "HIPAA.Security-LambdaConcurrency": (
                    "Load is bounded upstream (API Gateway stage throttling, SQS batch size, fixed "
                    "schedules); reserving concurrency per function fails deploys in accounts with "
                    "the default low concurrency quota"
                ),
            },
        )
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None, f"{spec.name} has no permissions at all"
        findings = {
            "HIPAA.Security-IAMNoInlinePolicy": (
                f"The policy belongs to {spec.name}'s dedicated role only, is generated from "
                "sotong.resources on every synth and is deleted with the role, so it cannot be "
                "attached elsewhere or drift"
            ),
        }
        findings.update(self._wildcard_findings(spec))
        acknowledge(policy, findings)

    def _wildcard_findings(self, spec: Function) -> Mapping[str, str]:
        """IAM5 findings that CDK's grants produce, each with why the wildcard is narrow."""
        stack = Stack.of(self)
        findings: dict[str, str] = {}
        kms_actions = {
            "kms:GenerateDataKey*": "GenerateDataKey and GenerateDataKeyWithoutPlaintext",
            "kms:ReEncrypt*": "ReEncryptFrom and ReEncryptTo",
        }
        writes = any(access == "write" for access in spec.tables.values()) or bool(spec.sends_to)
        if writes:
            for action, family in kms_actions.items():
                findings[f"AwsSolutions-IAM5[Action::{action}]"] = (
                    f"{action} ({family}) is what SQS and DynamoDB need to encrypt with the "
                    "stack's customer-managed key; the statement is limited to that one key ARN"
                )
        for name in spec.tables:
            if table(name).indexes:
                data = self._tables.by_name[name]
                logical_id = stack.get_logical_id(data.node.default_child)  # type: ignore[arg-type]
                findings[f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/index/*]"] = (
                    f"{spec.name} queries the GSIs of the {name} table; index ARNs are "
                    "<table ARN>/index/<name> and the wildcard covers only this table's indexes"
                )
        return findings
