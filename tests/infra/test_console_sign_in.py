"""The staff console in the CDK stack: a Cognito domain for the hosted UI, a public PKCE client
back to the stage's /console/, the stage variables public_api reads, and the console's files in
the shared layer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sotong.web import console
from tests.infra import cfn
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra


def _one(synth: Synth, kind: str) -> tuple[str, dict[str, Any]]:
    found = cfn.of_type(synth.template, kind)
    assert len(found) == 1, f"{kind}: {sorted(found)}"
    return next(iter(found.items()))


def _console_client(synth: Synth) -> tuple[str, dict[str, Any]]:
    clients = cfn.of_type(synth.template, "AWS::Cognito::UserPoolClient")
    found = [
        (logical, client)
        for logical, client in clients.items()
        if client["Properties"].get("ClientName") == "sotong-demo-staff-web"
    ]
    assert len(found) == 1, sorted(clients)
    return found[0]


def test_the_user_pool_has_a_hosted_ui_domain_for_the_hospital_and_account(synth: Synth) -> None:
    _, domain = _one(synth, "AWS::Cognito::UserPoolDomain")
    properties = domain["Properties"]
    assert "CustomDomainConfig" not in properties
    prefix = json.dumps(properties["Domain"])
    assert "sotong-demo-staff" in prefix
    assert "AWS::AccountId" in prefix
    assert properties.get("ManagedLoginVersion", 1) == 1  # the classic hosted UI


def test_the_console_client_is_public_and_code_flow_only(synth: Synth) -> None:
    _, client = _console_client(synth)
    properties = client["Properties"]
    assert properties.get("GenerateSecret") in (None, False)
    assert properties["AllowedOAuthFlowsUserPoolClient"] is True
    assert properties["AllowedOAuthFlows"] == ["code"]  # PKCE; no implicit, no client credentials
    assert sorted(properties["AllowedOAuthScopes"]) == ["email", "openid", "profile"]
    assert properties["SupportedIdentityProviders"] == ["COGNITO"]
    assert properties["PreventUserExistenceErrors"] == "ENABLED"
    assert properties["EnableTokenRevocation"] is True
    for urls in (properties["CallbackURLs"], properties["LogoutURLs"]):
        assert len(urls) == 1
        text = json.dumps(urls[0])
        assert "execute-api" in text
        assert text.endswith('/v1/console/"]]}')


def test_the_stage_hands_the_sign_in_to_public_api(synth: Synth) -> None:
    _, stage = _one(synth, "AWS::ApiGateway::Stage")
    variables = stage["Properties"]["Variables"]
    assert set(variables) == set(console.STAGE_VARIABLES.values())
    client_logical, _ = _console_client(synth)
    domain_logical, _ = _one(synth, "AWS::Cognito::UserPoolDomain")
    assert variables["consoleClientId"] == {"Ref": client_logical}
    assert domain_logical in json.dumps(variables["consoleAuthDomain"])
    assert "amazoncognito.com" in json.dumps(variables["consoleAuthDomain"])
    assert json.dumps(variables["consoleUrl"]).endswith('/v1/console/"]]}')


def test_the_console_routes_are_public_gets_of_public_api(synth: Synth) -> None:
    resources = cfn.of_type(synth.template, "AWS::ApiGateway::Resource")
    parts = {r["Properties"]["PathPart"] for r in resources.values()}
    assert {"console", "{page}"} <= parts


def test_the_shared_layer_carries_the_console(synth: Synth) -> None:
    assets = [path for path in synth.outdir.glob("asset.*") if path.is_dir()]
    files = {file.relative_to(asset).as_posix() for asset in assets for file in asset.rglob("*")}
    for name, (file, _) in console.ASSETS.items():
        assert f"python/sotong/web/console/{file}" in files, f"{name} (run `make console`)"
