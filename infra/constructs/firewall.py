"""A regional WAF web ACL in front of the API: AWS managed rules and a per-IP rate limit."""

from typing import Any

from aws_cdk import ArnFormat, Aws, Fn, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.naming import physical

# Requests per 5 minutes from one IP. A hospital's staff and its lobby Wi-Fi share a few NAT
# addresses, so the limit is generous; the stage throttling limits the total.
RATE_LIMIT_PER_IP = 2000
# WAF logs are for looking into blocked and counted requests, not the access record PIPA asks
# for (that is the API's access log, kept 2 years): 90 days, and only what a rule acted on.
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
# Parts of a request WAF logs that can hold personal data: the query string (`phone_last4`,
# a survey token), the path (`/track/{code}`), the staff token, cookies and the provider's
# webhook signature.
REDACTED_HEADERS = ("authorization", "cookie", "x-solapi-signature")


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _managed(
    priority: int, name: str, overrides: tuple[str, ...] = ()
) -> wafv2.CfnWebACL.RuleProperty:
    statement: dict[str, Any] = {"vendor_name": "AWS", "name": name}
    if overrides:
        statement["rule_action_overrides"] = [
            wafv2.CfnWebACL.RuleActionOverrideProperty(
                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
            )
            for rule in overrides
        ]
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                **statement
            )
        ),
        visibility_config=_visibility(name),
    )


class Firewall(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        hospital_id: str,
        key: kms.IKey,
        stage_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        name = physical(hospital_id, "api")
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(name),
            rules=[
                _managed(0, "AWSManagedRulesAmazonIpReputationList"),
                # Complaint texts run to 4,000 Korean characters (about 12 KB of UTF-8), above the
                # common rule set's 8 KB body limit; the API validates sizes itself.
                _managed(1, "AWSManagedRulesCommonRuleSet", overrides=("SizeRestrictions_BODY",)),
                _managed(2, "AWSManagedRulesKnownBadInputsRuleSet"),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=3,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=RATE_LIMIT_PER_IP, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=_visibility("RateLimitPerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        # WAF logs only to log groups named aws-waf-logs-*; the stack's GUID keeps a log group
        # retained from an earlier stack of the same name from blocking this one.
        stack_guid = Fn.select(2, Fn.split("/", Aws.STACK_ID))
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"aws-waf-logs-{name}-{stack_guid}",
            retention=LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=log_group.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(query_string={}),
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(uri_path={}),
                *(
                    wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": h})
                    for h in REDACTED_HEADERS
                ),
            ],
            # Allowed requests are in the API's access log already; WAF keeps what it acted on.
            logging_filter={
                "DefaultBehavior": "DROP",
                "Filters": [
                    {
                        "Behavior": "KEEP",
                        "Requirement": "MEETS_ANY",
                        "Conditions": [
                            {"ActionCondition": {"Action": action}}
                            for action in ("BLOCK", "COUNT", "CAPTCHA", "CHALLENGE")
                        ],
                    }
                ],
            },
        )
