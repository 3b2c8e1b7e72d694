"""The one OpenAPI document: every route of ROUTES, nothing else, each documented with a summary,
a request example that fits its schema, the staff sign-in where ROUTES says "staff", and our error
shapes; routes and handlers that disagree are an error naming the route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from sotong.resources import ROUTES, Route
from sotong_local import openapi
from sotong_local.cli import main


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi.document()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_the_document_is_valid_openapi_with_every_route_and_no_other(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["info"]["title"] == "Sotong API"
    assert doc["servers"]
    documented = {(method, path) for method, path, _ in _operations(doc)}
    assert documented == {(r.method, r.path) for r in ROUTES}
    assert len(documented) == len(ROUTES)


def test_staff_routes_need_the_sign_in_and_public_ones_do_not(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"][openapi.SECURITY_SCHEME]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        if route.auth == "staff":
            assert operation["security"] == [{openapi.SECURITY_SCHEME: []}], route
            assert "401" in operation["responses"], route
        else:
            assert operation["security"] == [], route


def test_every_operation_has_a_summary_and_error_answers(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        assert operation.get("summary"), f"{method} {path} has no summary"
        assert "4XX" in operation["responses"], f"{method} {path}"
        if "422" in operation["responses"]:
            schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert "ValidationProblem" in json.dumps(schema)
    names = set(doc["components"]["schemas"])
    assert {"Problem", "ValidationProblem"} <= names
    assert not names & {"HTTPValidationError", "ValidationError"}  # Powertools' shapes, not ours


def test_every_body_has_an_example_that_fits_its_schema(doc: dict[str, Any]) -> None:
    components = doc["components"]
    for method, path, operation in _operations(doc):
        for kind, media in operation.get("requestBody", {}).get("content", {}).items():
            assert "example" in media, f"{method} {path} ({kind}) has no example"
            validator = Draft202012Validator({**media["schema"], "components": components})
            problems = [e.message for e in validator.iter_errors(media["example"])]
            assert not problems, f"{method} {path}: the example does not fit: {problems}"
    # bodies that the handlers read themselves are documented too
    for path, kind in (
        ("/webhooks/inbound", "application/json"),
        ("/webhooks/reports", "application/json"),
        ("/imports/treatments", "text/csv"),
    ):
        assert doc["paths"][path]["post"]["requestBody"]["content"][kind]["example"], path


def test_the_request_models_carry_their_own_examples(doc: dict[str, Any]) -> None:
    models = doc["components"]["schemas"]
    for name in ("ComplaintSubmission", "StaffEntry", "Transition", "Assignment", "Correction"):
        assert models[name].get("examples"), name
    for name in ("PatientRegistration", "TreatmentRecord", "Appointment", "StaffMessage"):
        assert models[name].get("examples"), name
    assert models["StaffEntry"]["examples"][0]["channel"] in ("phone", "walk_in")


def test_powertools_paths_become_api_gateway_paths() -> None:
    assert openapi.api_path("/patients/<patient_id>/treatments/<treatment_id>/date") == (
        "/patients/{patient_id}/treatments/{treatment_id}/date"
    )
    assert openapi.api_path("/patients/{patient_id}") == "/patients/{patient_id}"


def test_a_route_without_a_handler_is_an_error() -> None:
    ghost = Route("GET", "/patients/{patient_id}/ghosts", "recall_api", "staff")
    with pytest.raises(openapi.OpenApiError) as raised:
        openapi.document(routes=(*ROUTES, ghost))
    assert "GET /patients/{patient_id}/ghosts" in str(raised.value)
    assert "no handler" in str(raised.value)


def test_a_handler_without_a_route_is_an_error() -> None:
    routes = tuple(r for r in ROUTES if r.path != "/patients/{patient_id}/pause")
    with pytest.raises(openapi.OpenApiError) as raised:
        openapi.document(routes=routes)
    assert "POST /patients/{patient_id}/pause" in str(raised.value)
    assert "ROUTES has no such route" in str(raised.value)


def test_a_route_sent_to_the_wrong_function_is_an_error() -> None:
    routes = tuple(
        Route(r.method, r.path, "staff_api", r.auth) if r.path == "/survey" else r for r in ROUTES
    )
    with pytest.raises(openapi.OpenApiError) as raised:
        openapi.document(routes=routes)
    message = str(raised.value)
    assert "POST /survey: handled by public_api, but ROUTES sends it to staff_api" in message


def test_a_route_naming_an_unknown_function_is_an_error() -> None:
    with pytest.raises(openapi.OpenApiError, match="not among the functions"):
        openapi.document(routes=(*ROUTES, Route("GET", "/x", "nobody", "public")))


def test_the_cli_writes_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "openapi.json"
    assert main(["openapi", "-o", str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(openapi.document()))
    assert main(["openapi"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "Sotong API"


def test_the_committed_document_is_what_the_code_generates(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
    out = tmp_path / "openapi.json"
    assert main(["openapi", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
        "docs/openapi.json is not what the handlers and ROUTES describe: if the change is "
        "meant, regenerate it with `.venv/bin/sotong openapi -o docs/openapi.json` and commit it"
    )
