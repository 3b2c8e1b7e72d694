"""Each function's environment in the synthesized template is what `Function.required_env` (the
list its handler checks at import) says, plus only the variables every function gets and the
ones that have a default."""

from __future__ import annotations

import pytest

from sotong.complaints.classify import BEDROCK_MODEL_ENV
from sotong.notify.providers.factory import SES_CONFIGURATION_SET_ENV
from sotong.resources import FUNCTIONS, RUNTIME_ENVIRONMENT, Function
from tests.infra import cfn
from tests.infra.conftest import HOSPITAL, Synth

pytestmark = pytest.mark.infra

EVERY_FUNCTION = {
    "SOTONG_HOSPITAL_ID",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    *RUNTIME_ENVIRONMENT,
}


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_the_template_sets_exactly_what_the_function_checks(synth: Synth, spec: Function) -> None:
    _, resource = cfn.function(synth.template, spec, HOSPITAL)
    environment = set(resource["Properties"]["Environment"]["Variables"])
    optional = set()
    if spec.sends_email:
        optional.add(SES_CONFIGURATION_SET_ENV)
    if spec.uses_bedrock and synth.config.complaints.bedrock_model_id:
        optional.add(BEDROCK_MODEL_ENV)
    assert environment - EVERY_FUNCTION - optional == set(spec.required_env)
    assert len(spec.required_env) == len(set(spec.required_env))
