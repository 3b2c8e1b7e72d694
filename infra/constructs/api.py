"""The REST API from `sotong.resources.ROUTES`: Cognito for staff routes, none for public ones."""

from __future__ import annotations

import json
import re

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.staff_auth import StaffAuth
from infra.nag import acknowledge
from infra.naming import physical
from sotong import resources
from sotong.resources import ROUTES, Route
from sotong.web import console
from sotong.web import headers as security_headers

STAGE = "v1"
LOG_RETENTION = logs.RetentionDays.TWO_YEARS  # PIPA: access logs of sensitive data, 2 years
DEFAULT_RATE, DEFAULT_BURST = 50, 100
PUBLIC_METHOD = apigw.MethodDeploymentOptions(
    throttling_rate_limit=10,
    throttling_burst_limit=20,
    logging_level=apigw.MethodLoggingLevel.ERROR,
    metrics_enabled=True,
    data_trace_enabled=False,
)
_PATH_PARAMETER = re.compile(r"\{([A-Za-z0-9_]+)\}")

F = apigw.AccessLogField
ACCESS_LOG_FORMAT = {
    "requestId": F.context_request_id(),
    "extendedRequestId": F.context_extended_request_id(),
    "requestTime": F.context_request_time(),
    "ip": F.context_identity_source_ip(),
    "userAgent": F.context_identity_user_agent(),
    "httpMethod": F.context_http_method(),
    # The resource path (`/track/{code}`), not the request path: that one holds the tracking
    # code a patient looks up (and query strings would hold the last 4 digits of the phone).
    "resourcePath": F.context_resource_path(),
    "protocol": F.context_protocol(),
    "status": F.context_status(),
    "responseLength": F.context_response_length(),
    "responseLatency": F.context_response_latency(),
    "integrationLatency": F.context_integration_latency(),
    "staffUser": F.context_authorizer_claims("sub"),
    "wafStatus": F.context_waf_response_code(),
    "error": F.context_error_message(),
}


# API Gateway's own answers (the authorizer's 401/403, throttling's 429, WAF blocks, a function
# that failed: 502) carry the headers the functions' answers carry (sotong/web/headers.py).
# Unconfigured response types (UNAUTHORIZED, ACCESS_DENIED, THROTTLED, ...) fall back to these two.
GATEWAY_RESPONSE_TYPES = (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX)


def gateway_response_headers() -> dict[str, str]:
    """Static header values, single-quoted as API Gateway wants them (no quote inside one)."""
    values = {
        **security_headers.COMMON,
        "Content-Security-Policy": security_headers.GATEWAY_CSP,
        "Cache-Control": security_headers.NO_STORE,
    }
    assert not any("'" in value for value in values.values())
    return {name: f"'{value}'" for name, value in values.items()}


def stage_path(route: Route) -> str:
    """The key API Gateway uses for per-method stage settings: `/outbox/GET`."""
    return f"{route.path}/{route.method}"


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        hospital_id: str,
        key: kms.IKey,
        functions: dict[str, lambda_.Function],
        user_pool: cognito.IUserPool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=physical(hospital_id, "api"),
            description=f"Sotong API of {hospital_id}",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # EMR exports arrive in CP949 as often as UTF-8: pass CSV bodies through untouched
            # (base64 to the function, which decodes and detects the encoding)
            binary_media_types=["text/csv"],
            fail_on_warnings=True,
            # API Gateway logs to CloudWatch through one role per account and region; every
            # hospital stack sets it, and a deleted stack must not take it from the others.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # full request logs would copy patient data
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=DEFAULT_RATE,
                throttling_burst_limit=DEFAULT_BURST,
                method_options={
                    stage_path(route): PUBLIC_METHOD for route in ROUTES if route.auth == "public"
                },
            ),
        )
        self._execution_logs(key)
        self.validator = self.rest_api.add_request_validator(
            "ValidateAll",
            request_validator_name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self, "StaffAuthorizer", cognito_user_pools=[user_pool]
        )
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        for route in ROUTES:
            self.methods[route.method, route.path] = self._method(route, functions[route.function])
        self._console_sign_in(user_pool)
        for response_type in GATEWAY_RESPONSE_TYPES:
            self.rest_api.add_gateway_response(
                f"Gateway{response_type.response_type}",
                type=response_type,
                response_headers=gateway_response_headers(),
            )
        self._acknowledge()

    def _console_sign_in(self, user_pool: cognito.IUserPool) -> None:
        """The console's Cognito sign-in (the staff pool's domain and its PKCE client), handed to
        `public_api` as stage variables, which it reads per request (`sotong/web/console`).
        The client's callback is this stage's `/console/`, built from the API's id and the stage
        name, not from the stage resource (which depends on every method, so on the functions)."""
        staff = user_pool.node.scope
        if not isinstance(staff, StaffAuth):
            return  # a pool without the console's client
        stack = Stack.of(self)
        self.console_url = (
            f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}."
            f"{stack.url_suffix}/{STAGE}/console/"
        )
        staff.console_url = self.console_url
        stage = self.rest_api.deployment_stage.node.default_child
        assert isinstance(stage, apigw.CfnStage)
        values = {
            "client_id": staff.client.user_pool_client_id,
            "domain": staff.domain.base_url(),
            "redirect_uri": self.console_url,
        }
        for key, name in console.STAGE_VARIABLES.items():
            stage.add_property_override(f"Variables.{name}", values[key])

    def _execution_logs(self, key: kms.IKey) -> None:
        """Create the stage's execution log group so that it is encrypted and expires too."""
        stage = self.rest_api.deployment_stage
        execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.rest_api.rest_api_id}/{STAGE}",
            retention=LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        stage.node.add_dependency(execution_logs)

    def _resource(self, path: str) -> apigw.IResource:
        resource = self.rest_api.root
        for segment in path.strip("/").split("/"):
            resource = resource.get_resource(segment) or resource.add_resource(segment)
        return resource

    def _method(self, route: Route, function: lambda_.IFunction) -> apigw.Method:
        staff = route.auth == "staff"
        method = self._resource(route.path).add_method(
            route.method,
            apigw.LambdaIntegration(function, proxy=True, allow_test_invoke=False),
            authorization_type=(
                apigw.AuthorizationType.COGNITO if staff else apigw.AuthorizationType.NONE
            ),
            authorizer=self.authorizer if staff else None,
            request_validator=self.validator,
            request_parameters={
                f"method.request.path.{name}": True for name in _PATH_PARAMETER.findall(route.path)
            },
        )
        if not staff:
            why = (
                f"{route.method} {route.path} ({resources.function(route.function).description}) "
                "is public in sotong.resources by design: its callers, patients, guardians or a "
                "messaging provider whose callbacks the function verifies by signature, have no "
                "staff account. It is throttled per method on the stage and sits behind the WAF"
            )
            acknowledge(method, {"AwsSolutions-APIG4": why, "AwsSolutions-COG4": why})
        return method

    def _acknowledge(self) -> None:
        acknowledge(
            self.rest_api.deployment_stage,
            {
                "HIPAA.Security-APIGWCacheEnabledAndEncrypted": (
                    "Responses carry per-patient and per-staff data and must never be served "
                    "from a cache to another caller, so stage caching stays off"
                ),
                "HIPAA.Security-APIGWSSLEnabled": (
                    "A stage client certificate authenticates API Gateway to HTTP backends; every "
                    "integration here is a Lambda proxy invoked over the AWS API with IAM"
                ),
            },
        )
        role = self.rest_api.node.try_find_child("CloudWatchRole")
        assert role is not None
        acknowledge(
            role,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]": (
                    "The account-level API Gateway logging role needs exactly this AWS-managed "
                    "policy (CloudWatch Logs writes only); AWS maintains it as the service evolves"
                ),
            },
        )

    @property
    def stage_arn(self) -> str:
        return self.rest_api.deployment_stage.stage_arn
