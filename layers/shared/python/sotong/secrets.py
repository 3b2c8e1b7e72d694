"""Secrets by reference: values come from Secrets Manager, cached for five minutes, never logged."""

from __future__ import annotations

import json

from sotong.config.schema import SecretRef

MAX_AGE_S = 300


def resolve(ref: SecretRef) -> str:
    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_secret(ref.secret, max_age=MAX_AGE_S)
    if not isinstance(raw, str):
        raw = raw.decode() if isinstance(raw, bytes) else json.dumps(raw)
    if ref.key is None:
        return raw
    value = json.loads(raw).get(ref.key)
    if not isinstance(value, str):
        raise KeyError(f"secret '{ref.secret}' has no text key '{ref.key}'")
    return value


def resolve_json(ref: SecretRef) -> dict[str, str]:
    data = json.loads(resolve(ref))
    if not isinstance(data, dict):
        raise ValueError(f"secret '{ref.secret}' is not a JSON object")
    return data
