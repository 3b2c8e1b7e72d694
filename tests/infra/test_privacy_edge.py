"""What the edge keeps and sends: API Gateway's own answers carry the security headers, and neither
the WAF log nor the access log keeps a query string, a tracking code or a token."""

from __future__ import annotations

import json

from sotong.web import headers
from tests.infra import cfn
from tests.infra.conftest import Synth

EXPECTED = {
    "X-Content-Type-Options": "'nosniff'",
    "X-Frame-Options": "'DENY'",
    "Referrer-Policy": "'no-referrer'",
    "Strict-Transport-Security": f"'{headers.HSTS}'",
    "Content-Security-Policy": "'sandbox'",
    "Cache-Control": "'no-store'",
}


def test_gateway_responses_carry_the_security_headers(synth: Synth) -> None:
    responses = cfn.of_type(synth.template, "AWS::ApiGateway::GatewayResponse")
    by_type = {r["Properties"]["ResponseType"]: r["Properties"] for r in responses.values()}
    # Every response type API Gateway makes itself (UNAUTHORIZED from the Cognito authorizer,
    # ACCESS_DENIED, THROTTLED, WAF_FILTERED, INTEGRATION_FAILURE, ...) falls back to these.
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(by_type)
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        parameters = by_type[response_type]["ResponseParameters"]
        sent = {
            name.removeprefix("gatewayresponse.header."): value
            for name, value in parameters.items()
        }
        assert sent == EXPECTED, response_type
    api_id, _ = cfn.only(cfn.of_type(synth.template, "AWS::ApiGateway::RestApi"), "API")
    assert all(r["Properties"]["RestApiId"] == cfn.ref(api_id) for r in responses.values())


def test_waf_logs_redact_query_path_and_tokens_and_keep_only_what_a_rule_acted_on(
    synth: Synth,
) -> None:
    _, logging = cfn.only(cfn.of_type(synth.template, "AWS::WAFv2::LoggingConfiguration"), "")
    redacted = logging["Properties"]["RedactedFields"]
    assert {"QueryString": {}} in redacted
    assert {"UriPath": {}} in redacted
    names = {f["SingleHeader"]["Name"] for f in redacted if "SingleHeader" in f}
    assert {"authorization", "cookie"} <= names
    kept = logging["Properties"]["LoggingFilter"]
    assert kept["DefaultBehavior"] == "DROP"
    actions = {c["ActionCondition"]["Action"] for f in kept["Filters"] for c in f["Conditions"]}
    assert {"BLOCK", "COUNT"} <= actions
    assert "ALLOW" not in actions
    groups = cfn.of_type(synth.template, "AWS::Logs::LogGroup")
    waf = [
        g
        for g in groups.values()
        if "aws-waf-logs-" in json.dumps(g["Properties"].get("LogGroupName"))
    ]
    assert [g["Properties"]["RetentionInDays"] for g in waf] == [90]


def test_the_access_log_keeps_the_route_not_the_request_path(synth: Synth) -> None:
    _, stage = cfn.only(cfn.of_type(synth.template, "AWS::ApiGateway::Stage"), "stage")
    fields = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    assert fields["resourcePath"] == "$context.resourcePath"
    assert not any("$context.path" in value for value in fields.values())
