"""Public HTTP API: what patients and the outside world reach without a staff sign-in."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.api import create_resolver, resolve
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics

logger = get_logger("public_api")
metrics = get_metrics("public_api")
app = create_resolver("Sotong public API", "Health and patient-facing endpoints")
hospital = load_hospital()


@app.get("/health", summary="Liveness of the API and the hospital it serves")
def health() -> dict[str, Any]:
    return {
        "status": "ok",
        "hospital_id": hospital.hospital_id,
        "hospital": hospital.name,
        "time": clock.now().astimezone(hospital.zone).isoformat(),
    }


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
