"""One OpenAPI 3 document for the whole API, merged from the resolvers of the API functions
(`sotong openapi`, the local stack's `/_local/openapi.json`; never shipped in a Lambda).

Each API function's module (`functions/<module>.py`) has a Powertools resolver, `app`, that knows
its routes, their parameters and their pydantic request models. `document()` imports those modules
(lazily, by name, with `functions/` on sys.path, as the Lambda runtime does), merges their paths and
components and adds what no single resolver knows: the staff sign-in on the routes that
`sotong.resources.ROUTES` marks "staff", the shape of our error answers, a request-body example
for every operation, and the bodies that are not JSON (`sotong.api.OTHER_BODIES`).

ROUTES stays the single source of truth: a route there without a handler, or a handler that ROUTES
does not list (or lists under another function), is an `OpenApiError`.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import Server

from sotong.api import OTHER_BODIES
from sotong.resources import FUNCTIONS, ROUTES, Function, Route

TITLE = "Sotong API"
VERSION = "1.0.0"
SECURITY_SCHEME = "staffSignIn"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SERVERS: list[dict[str, Any]] = [
    {
        "url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
        "description": "a hospital's deployment (the stack output `ApiUrl`)",
        "variables": {
            "api_id": {"default": "abcdef1234", "description": "the REST API's id"},
            "region": {"default": "ap-northeast-2"},
            "stage": {"default": "prod"},
        },
    },
    {"url": "http://127.0.0.1:8000", "description": "the local stack (`make run`)"},
]
DESCRIPTION = """\
Complaints, recall and notifications for one hospital.

Staff routes need the hospital's Cognito sign-in: `Authorization: Bearer <ID token>` (the local
stack issues tokens at `POST /_local/token`). Errors are JSON: a 422 lists every bad field in
`fields` (`body.text`, `query.limit`, ...); any other 4xx has `error` (its kind), `message` and,
when one field is at fault, `field`.
"""
# Request bodies that are not JSON: an example per route of sotong.api.OTHER_BODIES.
OTHER_BODY_EXAMPLES: dict[str, str] = {
    "/imports/treatments": (
        "차트번호,환자명,휴대폰,시술,시술일,마케팅동의\n"
        "C-10021,김서연,010-2345-6781,implant_surgery,2026-11-25,Y\n"
        "C-10022,이민준,010-3456-7812,scaling,2026-11-20,N\n"
    ),
}

_SIGNED = "Signed by the provider: `X-Solapi-Signature` is the hex HMAC-SHA256 of "
_SIGNED += "`<timestamp>.<body>` with the hospital's webhook secret; unsigned, wrong or older "
_SIGNED += "than 5 minutes: 401."
_WEBHOOK_HEADERS = [
    {
        "name": "X-Solapi-Signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "maxLength": 200},
        "example": "sha256=" + "0" * 64,
    },
    {
        "name": "X-Solapi-Timestamp",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
        "example": "1795000000",
    },
]
_EVENTS = {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
# What handlers read themselves (headers, raw bodies), which their resolvers cannot describe.
RAW_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/webhooks/reports"): {
        "description": _SIGNED,
        "parameters": _WEBHOOK_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _EVENTS,
                    "example": [
                        {
                            "messageId": "M4V20261120100000ABCDEFGHIJKLMNO",
                            "statusCode": "4000",
                            "type": "ATA",
                            "customFields": {"sotongMessageId": "0123456789abcdef" * 2},
                        }
                    ],
                }
            },
        },
    },
    ("post", "/webhooks/inbound"): {
        "description": _SIGNED,
        "parameters": _WEBHOOK_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _EVENTS,
                    "example": {
                        "from": "01012345678",
                        "to": "0212345678",
                        "text": "네 내일 방문하겠습니다",
                        "type": "SMS",
                        "dateReceived": "2026-11-20T10:00:00+09:00",
                    },
                }
            },
        },
    },
    ("post", "/complaints"): {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "the same key returns the same receipt (a repeated submit)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "example": "web-7f3a9c2e",
            }
        ]
    },
    ("post", "/campaigns"): {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "required; the campaign is one per segment, template and send date "
                "whatever the key (asking again returns it with 200)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "example": "winter-scaling-2026",
            }
        ]
    },
}

ERROR_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "title": "Problem",
        "description": "A refused request. API Gateway's own answers (no or a bad sign-in, an "
        "unknown route, a body over 6 MB) carry `message` only.",
        "required": ["message"],
        "properties": {
            "error": {
                "type": "string",
                "description": "bad_request, unauthorized, forbidden, not_found, conflict, "
                "too_many_requests, unsupported_media_type, ...",
                "examples": ["not_found"],
            },
            "message": {"type": "string", "examples": ["no complaint c0123456789ab"]},
            "field": {
                "type": "string",
                "description": "the field at fault: `body.<name>`, `path.<name>`, "
                "`query.<name>` or `header.<name>`",
                "examples": ["path.complaint_id"],
            },
        },
        "additionalProperties": True,
    },
    "ValidationProblem": {
        "type": "object",
        "title": "ValidationProblem",
        "description": "Input that does not match the schema: every bad field, the first in "
        "`message`.",
        "required": ["error", "message", "fields"],
        "properties": {
            "error": {"type": "string", "const": "validation"},
            "message": {
                "type": "string",
                "examples": ["body.text: String should have at least 5 characters"],
            },
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "problem", "type"],
                    "properties": {
                        "field": {"type": "string", "examples": ["body.text"]},
                        "problem": {"type": "string"},
                        "type": {"type": "string", "examples": ["string_too_short"]},
                    },
                },
            },
        },
    },
}
STAFF_SIGN_IN: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "The ID token of the hospital's Cognito user pool, checked by API Gateway's "
    "Cognito authorizer; the user's role group (cs_admin, department_staff, reception, qi) and "
    "department group (dept-<id>) decide what they may do and see: each operation's x-roles "
    "(docs/roles.md).",
}
# Powertools' own error components; our resolvers answer with the ones above instead.
_REPLACED = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


class OpenApiError(Exception):
    """The handlers and `sotong.resources.ROUTES` disagree, or two resolvers clash."""


def api_path(path: str) -> str:
    """Powertools' `/complaints/<complaint_id>` as API Gateway writes it: `/complaints/{...}`."""
    return re.sub(r"<(\w+)>", r"{\1}", path)


def default_functions_dir() -> Path:
    """`functions/` of the repository this package lives in (local/sotong_local/), or of the
    working directory (a package installed elsewhere)."""
    parents = Path(__file__).resolve().parents
    return (parents[2] if len(parents) > 2 else Path.cwd()) / "functions"


def api_functions(
    routes: Iterable[Route] = ROUTES, functions: Iterable[Function] = FUNCTIONS
) -> dict[str, str]:
    """Function name -> module name, for every function that ROUTES names."""
    modules = {f.name: f.module for f in functions}
    out: dict[str, str] = {}
    for route in routes:
        if route.function not in modules:
            raise OpenApiError(
                f"{route.method} {route.path}: ROUTES names function '{route.function}', "
                "which is not among the functions"
            )
        out[route.function] = modules[route.function]
    return out


@contextmanager
def _placeholder_env(module_name: str) -> Iterator[None]:
    """Placeholders for the variables `require_env` checks that are unset: describing a
    function's routes reaches no table, queue or secret."""
    spec = next((f for f in FUNCTIONS if f.module == module_name), None)
    unset = [name for name in (spec.required_env if spec else ()) if not os.environ.get(name)]
    os.environ.update({name: "unset-while-documenting" for name in unset})
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


def resolver_schema(module_name: str) -> dict[str, Any]:
    """The OpenAPI document of one function's resolver (`<module>.app`)."""
    with _placeholder_env(module_name):  # the module checks its environment at import
        module = importlib.import_module(module_name)
    app = getattr(module, "app", None)
    if app is None or not hasattr(app, "get_openapi_json_schema"):
        raise OpenApiError(f"{module_name}.py has no Powertools resolver named `app`")
    schema: dict[str, Any] = json.loads(app.get_openapi_json_schema())
    return schema


def document(
    routes: Iterable[Route] = ROUTES,
    functions: Iterable[Function] = FUNCTIONS,
    functions_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The whole API as one OpenAPI document; `OpenApiError` when handlers and ROUTES differ."""
    routes = tuple(routes)
    folder = str(Path(functions_dir or default_functions_dir()).resolve())
    if Path(folder).is_dir() and folder not in sys.path:
        sys.path.insert(0, folder)
    declared = {(r.method.lower(), api_path(r.path)): r for r in routes}
    problems = [
        f"{method.upper()} {path} is in ROUTES more than once"
        for method, path in declared
        if sum(1 for r in routes if (r.method.lower(), api_path(r.path)) == (method, path)) > 1
    ]
    # Powertools merges the resolvers' documents; what it cannot check (which function handles a
    # route, a model name two functions use for different fields) is checked here first.
    merge = OpenAPIMerge(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        servers=[_server(server) for server in SERVERS],
        on_conflict="error",
    )
    components: dict[str, Any] = {}
    handled_by: dict[tuple[str, str], str] = {}
    for function_name, module_name in api_functions(routes, functions).items():
        schema = resolver_schema(module_name)
        models: dict[str, Any] = {}
        for name, component in schema.get("components", {}).get("schemas", {}).items():
            if name in _REPLACED:
                continue
            if name in components and components[name] != component:
                raise OpenApiError(
                    f"two request models are named {name} (in {module_name}.py and another "
                    "function) with different fields: rename one"
                )
            components[name] = models[name] = component
        paths: dict[str, dict[str, Any]] = {}
        for raw_path, item in schema.get("paths", {}).items():
            path = api_path(raw_path)
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                key = (method, path)
                if key in handled_by:
                    problems.append(
                        f"{method.upper()} {path} is handled by both {handled_by[key]} and "
                        f"{function_name}"
                    )
                    continue
                handled_by[key] = function_name
                route = declared.get(key)
                if route is None:
                    problems.append(
                        f"{method.upper()} {path}: {module_name}.py handles it, but "
                        "sotong.resources.ROUTES has no such route (API Gateway would not "
                        "reach it)"
                    )
                    continue
                if route.function != function_name:
                    problems.append(
                        f"{method.upper()} {path}: handled by {function_name}, but ROUTES "
                        f"sends it to {route.function}"
                    )
                    continue
                paths.setdefault(path, {})[method] = _operation(operation, route)
        merge.add_schema({"paths": paths, "components": {"schemas": models}})
    for (method, path), route in declared.items():
        if (method, path) not in handled_by:
            problems.append(
                f"{route.method} {route.path}: in sotong.resources.ROUTES (function "
                f"{route.function}), but {route.function}'s resolver has no handler for it"
            )
    if problems:
        raise OpenApiError("the API's handlers and ROUTES differ:\n" + "\n".join(problems))
    doc = merge.get_openapi_schema()
    merged = doc.get("paths", {})
    components = {**doc.get("components", {}).get("schemas", {}), **copy.deepcopy(ERROR_SCHEMAS)}
    for item in merged.values():
        for operation in item.values():
            _add_body_example(operation, components)
    ordered = {api_path(r.path): merged[api_path(r.path)] for r in routes}  # in ROUTES order
    doc["paths"] = {path: {m: item[m] for m in sorted(item)} for path, item in ordered.items()}
    # Powertools would put a configured scheme in unserialised: it is added here as JSON
    doc["components"] = {
        "schemas": dict(sorted(components.items())),
        "securitySchemes": {SECURITY_SCHEME: copy.deepcopy(STAFF_SIGN_IN)},
    }
    return doc


def _server(server: dict[str, Any]) -> Server:
    return Server.model_validate(copy.deepcopy(server))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(operation: dict[str, Any], route: Route) -> dict[str, Any]:
    operation = copy.deepcopy(operation)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    accepted = OTHER_BODIES.get(route.path)
    if "422" in responses or accepted:
        # a body the route parses itself (a CSV) is refused with its own error, naming the field
        invalid = {"anyOf": [_ref("ValidationProblem"), _ref("Problem")]}
        responses["422"] = {
            "description": "Invalid input: every bad field, named",
            "content": {
                "application/json": {"schema": invalid if accepted else _ref("ValidationProblem")}
            },
        }
    if route.auth == "staff":
        operation["security"] = [{SECURITY_SCHEME: []}]
        operation["x-roles"] = list(route.roles)
        operation["description"] = (
            f"**Roles:** {', '.join(route.roles)} (docs/roles.md)\n\n"
            + operation.get("description", "")
        ).strip()
        responses["401"] = {
            "description": "No staff sign-in, or a token that is not valid or has no role",
            "content": {"application/json": {"schema": _ref("Problem")}},
        }
        responses["403"] = {
            "description": f"Signed in with a role other than {', '.join(route.roles)}",
            "content": {"application/json": {"schema": _ref("Problem")}},
        }
    else:
        operation["security"] = []
    responses["4XX"] = {
        "description": "Refused: `error` is the kind, `field` the field at fault",
        "content": {"application/json": {"schema": _ref("Problem")}},
    }
    raw = RAW_INPUTS.get((route.method.lower(), api_path(route.path)), {})
    if "description" in raw:
        operation["description"] = (
            operation.get("description", "") + "\n\n" + raw["description"]
        ).strip()
    if "parameters" in raw:
        operation["parameters"] = operation.get("parameters", []) + copy.deepcopy(raw["parameters"])
    if "requestBody" in raw and "requestBody" not in operation:
        operation["requestBody"] = copy.deepcopy(raw["requestBody"])
    if accepted and "requestBody" not in operation:
        example = OTHER_BODY_EXAMPLES.get(route.path)
        operation["requestBody"] = {
            "required": True,
            "content": {
                kind: {
                    "schema": {"type": "string"},
                    **({"example": example} if example is not None else {}),
                }
                for kind in accepted
            },
        }
    return operation


def _add_body_example(operation: dict[str, Any], components: dict[str, Any]) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json")
    if media is None or "example" in media or "examples" in media:
        return
    example = example_of(media.get("schema", {}), components)
    if example is not None:
        media["example"] = example


def example_of(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """An example for a schema: the model's or the field's own `examples` first, else one built
    from its required fields and the fields that have examples (None when none can be made)."""
    if depth > 8:
        return None
    if "$ref" in schema:
        target = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return example_of(target, components, depth + 1)
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    for combined in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(combined, ()):
            if option.get("type") != "null":
                return example_of(option, components, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", ()))
        out = {}
        for name, field in schema.get("properties", {}).items():
            if name in required or _has_example(field, components):
                value = example_of(field, components, depth + 1)
                if value is not None:
                    out[name] = value
        return out
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if kind == "string":
        return {"date": "2026-11-20", "date-time": "2026-11-20T10:00:00+09:00"}.get(
            schema.get("format", ""), "text"
        )
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "array":
        item = example_of(schema.get("items", {}), components, depth + 1)
        return [] if item is None else [item]
    return None


def _has_example(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True  # a nested model: its example shows its shape
    if schema.get("examples") or "example" in schema:
        return True
    return any(
        _has_example(option, components)
        for combined in ("anyOf", "oneOf", "allOf")
        for option in schema.get(combined, ())
    )


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
