"""Lambda functions from `sotong.resources.FUNCTIONS`, each with its own role and log group."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Annotations, ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.constructs.api import DEFAULT_BURST, DEFAULT_RATE, PUBLIC_METHOD
from infra.constructs.data import Tables
from infra.constructs.email import configuration_set_name
from infra.constructs.hash_key import grant_read as grant_hash_key
from infra.constructs.queues import Queues
from infra.nag import acknowledge
from infra.naming import pascal, physical
from sotong.complaints import rulebook
from sotong.complaints.classify import BEDROCK_MODEL_ENV
from sotong.config.loader import write_validated
from sotong.config.schema import HospitalConfig, SecretRef
from sotong.notify.providers.factory import SES_CONFIGURATION_SET_ENV
from sotong.resources import (
    FUNCTIONS,
    HASH_KEY_ENV,
    RUNTIME_ENVIRONMENT,
    Function,
    Grant,
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
POWERTOOLS_PARAMETERS = "/aws/service/powertools/python/arm64/python3.14"


def powertools_parameter(version: str) -> str:
    """The public SSM parameter that holds the layer ARN of one Powertools release, in every
    commercial region (`/aws/service/powertools/python/{arch}/{python}/{version}`)."""
    return f"{POWERTOOLS_PARAMETERS}/{version}"


METRICS_NAMESPACE = "Sotong"


NOT_IN_A_VPC = (
    "Not in a VPC, by a cost decision: the functions call only AWS public endpoints (DynamoDB, "
    "SQS, Secrets Manager, KMS, SES, Bedrock) and the messaging provider's HTTPS API. Inside a "
    "VPC they would need a NAT gateway (about US$43 a month per availability zone in Seoul, plus "
    "US$0.059 per GB) for the provider, and interface endpoints for SQS, Secrets Manager, KMS, "
    "SES and Bedrock (about US$9.5 a month each per zone): roughly US$100-200 a month per "
    "hospital, more than the rest of its stack costs at a clinic's volume. Without it every call "
    "still goes over TLS, is signed, and IAM allows only the role's listed actions on listed "
    "resources and keys; what is given up is network-level egress control"
)
NO_RESERVED_CONCURRENCY = (
    "Reserved concurrency is not set: it is carved out of the account's concurrency quota "
    "(Lambda refuses a reservation that leaves under 100 unreserved, and new accounts can have a "
    "quota of 10), so it would fail deploys; the account quota is the hard cap and each "
    "function's throttles alarm"
)
READ_ACTIONS = frozenset({"GetItem", "BatchGetItem", "Query"})
TABLE_KEY_READ = ("kms:Decrypt", "kms:DescribeKey")
TABLE_KEY_WRITE = (*TABLE_KEY_READ, "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*")


def secret_refs(config: HospitalConfig, spec: Function) -> list[SecretRef]:
    """The hospital's secret references `spec` reads (those the config sets)."""
    refs = (getattr(config.sender, name) for name in spec.secrets)
    return [ref for ref in refs if ref is not None]


def bytecode_interpreter(runtime: str | None = None) -> str | None:
    """A Python of the functions' runtime version (`python3.14`) to compile their bytecode
    with: this one when it is that version, else that name on PATH; None when neither is."""
    name = runtime or RUNTIME.name
    if name == f"python{sys.version_info[0]}.{sys.version_info[1]}":
        return sys.executable
    return shutil.which(name)


def compile_bytecode(directory: Path, shown_as: str, interpreter: str | None) -> bool:
    """Compile every module under `directory` into its `__pycache__`, with hash-based pyc files
    the runtime takes without looking at the source (`unchecked-hash`: the deployed code never
    changes). Lambda's /opt and /var/task are read-only, so without them every cold start
    compiles each module it imports again and keeps nothing (60-90 ms of an HTTP
    function's init in `make bench`). False, and nothing compiled, without an
    interpreter of the runtime's version (bytecode is version-specific)."""
    if interpreter is None:
        return False
    command = [interpreter, "-m", "compileall", "-q", "-j", "0", "-d", shown_as]
    command += ["--invalidation-mode", "unchecked-hash", str(directory)]
    subprocess.run(command, check=True)  # noqa: S603 - a Python found above, our own files
    return True


def build_function_code(build_dir: Path, interpreter: str | None) -> Path:
    """The handler modules' asset (`functions/`), compiled when `interpreter` is given."""
    target = build_dir / "functions"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "functions", target, ignore=shutil.ignore_patterns(*ASSET_EXCLUDE))
    compile_bytecode(target, "/var/task", interpreter)
    return target


def build_shared_layer(build_dir: Path, interpreter: str | None = None) -> Path:
    """The shared layer's asset: the `sotong` package from layers/shared plus the packages of
    the pinned pure-Python wheels it needs beyond the runtime and the Powertools layer: tzdata
    (zoneinfo needs a time-zone database the runtime image may lack) and holidays (the public
    holidays of business-hours SLA clocks; its python-dateutil comes with the runtime's boto3)."""
    import holidays
    import tzdata  # type: ignore[import-untyped]

    target = build_dir / "shared-layer"
    if target.exists():
        shutil.rmtree(target)
    ignore = shutil.ignore_patterns(*ASSET_EXCLUDE)
    shutil.copytree(REPO / "layers" / "shared" / "python", target / "python", ignore=ignore)
    for package in (tzdata, holidays):
        source = Path(str(package.__file__)).parent
        shutil.copytree(source, target / "python" / source.name, ignore=ignore)
    compile_bytecode(target / "python", "/opt/python", interpreter)
    return target


def write_config_layer(config: HospitalConfig, build_dir: Path) -> Path:
    """Write the validated config where the layer puts it at run time: /opt/hospital/config.json,
    and beside it the same object pickled, which the functions load (`load_hospital`)."""
    layer_dir = build_dir / "hospital-config" / config.hospital_id
    target = layer_dir / "hospital" / "config.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True)
    target.write_text(text + "\n", encoding="utf-8")
    write_validated(config, target)
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
        hash_key: secretsmanager.ISecret,
        powertools_version: str,
        config_layer_dir: Path,
        build_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._key = key
        self._tables = tables
        self._queues = queues
        self._hash_key = hash_key
        interpreter = bytecode_interpreter()
        if interpreter is None:
            Annotations.of(self).add_warning_v2(
                "sotong:no-bytecode",
                f"No {RUNTIME.name} here: the functions ship without compiled bytecode, so each "
                "cold start compiles the modules it imports (60-90 ms more for an HTTP "
                f"function). Synthesize with {RUNTIME.name} or put it on PATH.",
            )
        self.layers: list[lambda_.ILayerVersion] = [
            lambda_.LayerVersion(
                self,
                "SharedLayer",
                description="sotong shared package (layers/shared)",
                code=lambda_.Code.from_asset(str(build_shared_layer(build_dir, interpreter))),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
            ),
            # Resolved at deploy time from Powertools' public parameter for the pinned version
            # (the layer number differs per region and is not knowable offline).
            lambda_.LayerVersion.from_layer_version_arn(
                self,
                "PowertoolsLayer",
                f"{{{{resolve:ssm:{powertools_parameter(powertools_version)}}}}}",
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
        self._code = lambda_.Code.from_asset(str(build_function_code(build_dir, interpreter)))
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
            **RUNTIME_ENVIRONMENT,
        }
        environment.update(self._grant_data(spec, role))
        self._grant_secrets(spec, role)
        if spec.hash_key:
            environment.update(self._grant_hash_key(role))
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
        for grant in spec.data:
            role.add_to_principal_policy(self._data_statement(grant))
        for name in spec.tables:
            environment[table(name).env] = self._tables.by_name[name].table_name
        if spec.data:
            # DynamoDB uses the table's customer-managed key on the caller's behalf.
            writes = any(a not in READ_ACTIONS for grant in spec.data for a in grant.actions)
            self._key.grant(role, *(TABLE_KEY_WRITE if writes else TABLE_KEY_READ))
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

    def _data_statement(self, grant: Grant) -> iam.PolicyStatement:
        data = self._tables.by_name[grant.table]
        resource = data.table_arn
        if grant.index is not None:
            resource = f"{data.table_arn}/index/{grant.index}"
        return iam.PolicyStatement(
            actions=[f"dynamodb:{action}" for action in grant.actions],
            resources=[resource],
            conditions=(
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(grant.keys)}}
                if grant.keys
                else None
            ),
        )

    def _grant_hash_key(self, role: iam.Role) -> dict[str, str]:
        grant_hash_key(self._hash_key, self._key, role)
        return {HASH_KEY_ENV: self._hash_key.secret_arn}

    def _grant_secrets(self, spec: Function, role: iam.Role) -> None:
        arns = sorted({self._secret_arn(ref.secret) for ref in secret_refs(self._config, spec)})
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
        acknowledge(
            function,
            {
                "HIPAA.Security-LambdaDLQ": self._failures_go_to(spec),
                "HIPAA.Security-LambdaInsideVPC": NOT_IN_A_VPC,
                "HIPAA.Security-LambdaConcurrency": (
                    f"{spec.name}: {self._concurrency_bound(spec)}. {NO_RESERVED_CONCURRENCY}"
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

    @staticmethod
    def _failures_go_to(spec: Function) -> str:
        """Where a failed invocation ends up, since no function-level DLQ is set."""
        if spec.trigger:
            return (
                f"{spec.name} is polled from SQS ({spec.trigger.queue}), not invoked "
                "asynchronously: a message that keeps failing goes to the queue's own "
                "dead-letter queue, so a function-level DLQ would never receive anything"
            )
        if spec.stream:
            return (
                f"{spec.name} reads the table's DynamoDB stream (an event source mapping, not an "
                "asynchronous invocation): a failing record is retried, split, and after "
                f"{spec.stream.retry_attempts} attempts left to the outbox sweeper, which "
                "publishes every item still pending; a function-level DLQ never receives anything"
            )
        if spec.schedule or spec.event_rule:
            source = (
                "EventBridge Scheduler (its dead-letter queue keeps invocations it could not "
                "deliver)"
                if spec.schedule
                else "an EventBridge rule on SES events (the rule target's dead-letter queue, "
                "email-events-dlq, keeps events it could not deliver)"
            )
            return (
                f"{spec.name} is invoked asynchronously by {source}; an invocation that fails "
                "after Lambda's retries goes to the async-failures queue, the function's "
                "on-failure destination (infra/constructs/monitoring.py), which alarms: that "
                "destination does the work of a function-level DLQ, with the error included"
            )
        return (
            f"{spec.name} is invoked synchronously by API Gateway (Lambda proxy): the caller "
            "gets every failure as the HTTP answer, and Lambda never queues a synchronous "
            "invocation, so a DLQ would never receive anything"
        )

    def _concurrency_bound(self, spec: Function) -> str:
        """What actually bounds the function's concurrency."""
        if spec.trigger:
            rate = self._config.sender.rate_per_second
            cap = sender_concurrency(rate, spec.trigger)
            if cap is None:
                raise ValueError(
                    f"{spec.name}: an SQS trigger needs concurrency_per_rate (the event "
                    "source's MaximumConcurrency); nothing else bounds its concurrency"
                )
            return (
                f"its SQS event source's MaximumConcurrency caps it at {cap} concurrent "
                f"invocations (from the sender rate, {rate:g}/s)"
            )
        if spec.stream:
            return (
                "the DynamoDB stream event source runs one batch per shard at a time "
                "(ParallelizationFactor 1), so concurrency is the stream's shard count"
            )
        if spec.schedule:
            return (
                "EventBridge Scheduler starts one invocation per tick "
                f"({spec.schedule.expression}); only a retry of a failed run can overlap the next"
            )
        if spec.event_rule:
            return (
                "every SES event of the hospital's configuration set is one invocation, so "
                "concurrency follows e-mail volume, which the sender's rate "
                f"({self._config.sender.rate_per_second:g} messages/s) bounds; a throttled "
                "event is retried by Lambda and EventBridge for hours, then dead-lettered"
            )
        return (
            f"API Gateway stage throttling bounds its request rate ({DEFAULT_RATE}/s, burst "
            f"{DEFAULT_BURST}; {PUBLIC_METHOD.throttling_rate_limit}/s, burst "
            f"{PUBLIC_METHOD.throttling_burst_limit} per public route), so concurrency is at "
            f"most that rate times its duration (timeout {spec.timeout_s} s)"
        )

    def _wildcard_findings(self, spec: Function) -> Mapping[str, str]:
        """IAM5 findings that CDK's grants produce, each with why the wildcard is narrow (the
        DynamoDB statements name each index's ARN: no `/index/*`)."""
        findings: dict[str, str] = {}
        kms_actions = {
            "kms:GenerateDataKey*": "GenerateDataKey and GenerateDataKeyWithoutPlaintext",
            "kms:ReEncrypt*": "ReEncryptFrom and ReEncryptTo",
        }
        # an asynchronously invoked function also sends its failures to the encrypted
        # async-failures queue (its on-failure destination, infra/constructs/monitoring.py)
        writes = (
            bool(spec.sends_to)
            or bool(spec.schedule or spec.event_rule)
            or any(action not in READ_ACTIONS for grant in spec.data for action in grant.actions)
        )
        if writes:
            for action, family in kms_actions.items():
                findings[f"AwsSolutions-IAM5[Action::{action}]"] = (
                    f"{action} ({family}) is what SQS and DynamoDB need to encrypt with the "
                    "stack's customer-managed key; the statement is limited to that one key ARN"
                )
        return findings
