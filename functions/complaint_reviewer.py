"""DynamoDB stream consumer: the second opinion on each new complaint and on each patient reply
to a recall message (`sotong.complaints.review`). A record that fails is reported as the
batch's first failure, so the stream retries from there; everything it writes is idempotent."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import store
from sotong.complaints.classify import LazyClassifier, classifier_for
from sotong.complaints.review import SecondOpinion, second_opinion_for
from sotong.complaints.service import ComplaintDesk
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.recall.repository import DynamoPatientRepository
from sotong.resources import require_env

require_env("complaint_reviewer")
logger = get_logger("complaint_reviewer")
metrics = get_metrics("complaint_reviewer")
hospital = load_hospital()
reviewer = SecondOpinion(
    ComplaintDesk(hospital, classifier_for(hospital)),
    LazyClassifier(hospital, second_opinion_for),
    DynamoPatientRepository(),
)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for record in event.get("Records") or []:
        change = record.get("dynamodb") or {}
        image = change.get("NewImage")
        if record.get("eventName") != "INSERT" or not image:
            continue
        try:
            outcome = reviewer.record(store.from_item(image))
        except Exception:
            logger.exception("second opinion failed; the stream retries from this record")
            return {"batchItemFailures": [{"itemIdentifier": str(change.get("SequenceNumber"))}]}
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    for outcome, count in outcomes.items():
        metrics.add_metric(name=f"SecondOpinion_{outcome}", unit="Count", value=count)
    if outcomes.get("raised") or outcomes.get("complaint"):
        logger.warning("second opinion raised urgency", extra=outcomes)
    return {"batchItemFailures": []}


init_phase.finished()
