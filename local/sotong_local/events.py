"""The events AWS hands to Lambda, built the same shape: API Gateway REST (v1) proxy, SQS, and
EventBridge Scheduler's scheduled event."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "ap-northeast-2"
STAGE = "v1"
API_ID = "sotonglocal"


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def proxy_event(
    *,
    method: str,
    path: str,
    resource: str,
    path_parameters: dict[str, str] | None,
    headers: list[tuple[str, str]],
    query: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    claims: dict[str, str] | None = None,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API Lambda-proxy event, as in AWS's `apigateway-aws-proxy` sample.

    Headers keep the client's spelling; single-value maps hold the last value, as API Gateway does.
    A body that is not UTF-8 arrives base64-encoded with `isBase64Encoded: true`.
    """
    epoch = now if now is not None else time.time()
    request_id = request_id or str(uuid.uuid4())
    multi_headers = _group(headers)
    multi_query = _group(query)
    text: str | None
    encoded = False
    if not body:
        text = None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "resourceId": hashlib.sha1(resource.encode(), usedforsecurity=False).hexdigest()[:6],
        "stage": STAGE,
        "requestId": request_id,
        "extendedRequestId": request_id.replace("-", "")[:16],
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch)),
        "requestTimeEpoch": int(epoch * 1000),
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "accessKey": None,
            "sourceIp": source_ip,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": user_agent,
            "user": None,
        },
        "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "domainPrefix": API_ID,
        "path": f"/{STAGE}{path}",
        "resourcePath": resource,
        "httpMethod": method,
        "apiId": API_ID,
        "protocol": "HTTP/1.1",
    }
    if claims is not None:
        context["authorizer"] = {"claims": claims}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": encoded,
    }


def _message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """SQS ReceiveMessage attribute values -> the camelCase shape of the Lambda SQS event."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            entry["binaryValue"] = (
                base64.b64encode(raw).decode("ascii") if isinstance(raw, bytes) else raw
            )
        out[name] = entry
    return out


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One Lambda SQS event record from one ReceiveMessage message."""
    system = message.get("Attributes", {})
    attributes = {
        name: str(system[name])
        for name in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "SequenceNumber",
            "MessageGroupId",
            "MessageDeduplicationId",
            "AWSTraceHeader",
        )
        if name in system
    }
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(message.get("Body", "").encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else REGION,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn) for m in messages]}


def schedule_arn(schedule_name: str, group: str = "default") -> str:
    return f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/{schedule_name}"


def scheduled_event(schedule: str, at: datetime) -> dict[str, Any]:
    """EventBridge Scheduler's event for a schedule that fired at `at`."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [schedule],
        "detail": {},
    }
