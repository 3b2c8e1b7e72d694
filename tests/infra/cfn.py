"""Small helpers to find things in a synthesized CloudFormation template (a plain dict)."""

from __future__ import annotations

from typing import Any

from infra.naming import physical
from sotong.resources import Function, Queue, Table

Template = dict[str, Any]
Resource = dict[str, Any]


def of_type(template: Template, kind: str) -> dict[str, Resource]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def only(items: dict[str, Resource], what: str) -> tuple[str, Resource]:
    assert len(items) == 1, f"expected exactly one {what}, found {sorted(items)}"
    return next(iter(items.items()))


def ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def arn(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def render(value: Any) -> str:
    """A string or Fn::Join as text, with `${Ref}` / `${Id.Attr}` for intrinsics."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(part) for part in parts)
    raise AssertionError(f"cannot render {value!r}")


def key_id(template: Template) -> str:
    logical_id, _ = only(of_type(template, "AWS::KMS::Key"), "KMS key")
    return logical_id


def table_id(template: Template, spec: Table) -> str:
    matches = {
        logical_id: resource
        for logical_id, resource in of_type(template, "AWS::DynamoDB::GlobalTable").items()
        if {"AttributeName": spec.partition_key, "KeyType": "HASH"}
        in resource["Properties"]["KeySchema"]
        and resource["Properties"].get("TimeToLiveSpecification", {}).get("AttributeName")
        == spec.ttl_attribute
    }
    logical_id, _ = only(matches, f"table {spec.name}")
    return logical_id


def queue_id(template: Template, name: str) -> str:
    matches = {
        logical_id: resource
        for logical_id, resource in of_type(template, "AWS::SQS::Queue").items()
        if resource["Properties"].get("QueueName") == name
    }
    logical_id, _ = only(matches, f"queue {name}")
    return logical_id


def queue_ids(template: Template, spec: Queue, hospital_id: str) -> tuple[str, str]:
    """(queue, dead-letter queue) logical ids."""
    return (
        queue_id(template, physical(hospital_id, spec.name)),
        queue_id(template, physical(hospital_id, spec.dlq_name)),
    )


def function(template: Template, spec: Function, hospital_id: str) -> tuple[str, Resource]:
    matches = {
        logical_id: resource
        for logical_id, resource in of_type(template, "AWS::Lambda::Function").items()
        if resource["Properties"].get("FunctionName") == physical(hospital_id, spec.name)
    }
    return only(matches, f"function {spec.name}")


def role_id(function_resource: Resource) -> str:
    role = function_resource["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])


def statements(template: Template, role: str) -> list[dict[str, Any]]:
    """Every statement of the IAM policies attached to `role` (a logical id)."""
    found: list[dict[str, Any]] = []
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if ref(role) in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    inline = template["Resources"][role]["Properties"].get("Policies", [])
    for policy in inline:
        found += policy["PolicyDocument"]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions(statement: dict[str, Any]) -> list[str]:
    return [str(action) for action in as_list(statement["Action"])]


def api_paths(template: Template) -> dict[str, str]:
    """Logical id of each API Gateway resource -> its full path, e.g. `/messages/{message_id}`."""
    resources = of_type(template, "AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id not in paths:
            properties = resources[logical_id]["Properties"]
            parent = properties["ParentId"]
            prefix = path_of(parent["Ref"]) if "Ref" in parent else ""
            paths[logical_id] = f"{prefix}/{properties['PathPart']}"
        return paths[logical_id]

    for logical_id in resources:
        path_of(logical_id)
    return paths


def methods(template: Template) -> dict[tuple[str, str], Resource]:
    """(HTTP method, path) -> the AWS::ApiGateway::Method resource."""
    paths = api_paths(template)
    found: dict[tuple[str, str], Resource] = {}
    for method in of_type(template, "AWS::ApiGateway::Method").values():
        properties = method["Properties"]
        resource = properties["ResourceId"]
        path = paths[resource["Ref"]] if "Ref" in resource else "/"
        found[properties["HttpMethod"], path] = method
    return found


def tags(resource: Resource) -> dict[str, str]:
    properties = resource["Properties"]
    if resource["Type"] == "AWS::Cognito::UserPool":
        return dict(properties.get("UserPoolTags", {}))
    if resource["Type"] == "AWS::DynamoDB::GlobalTable":
        tag_list = [tag for replica in properties["Replicas"] for tag in replica.get("Tags", [])]
    else:
        tag_list = properties.get("Tags", [])
    return {tag["Key"]: tag["Value"] for tag in tag_list}
