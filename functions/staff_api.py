"""Staff HTTP API (behind the Cognito authorizer): message records and the sandbox outbox."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.api import create_resolver, current_staff, resolve
from sotong.config import load_hospital
from sotong.errors import BadRequest, Forbidden, NotFound
from sotong.notify import outbox, records
from sotong.observability import get_logger, get_metrics
from sotong.phone import normalize_korean_phone

logger = get_logger("staff_api")
metrics = get_metrics("staff_api")
app = create_resolver("Sotong staff API", "For hospital staff; every call needs a staff sign-in")
hospital = load_hospital()


def _require_admin() -> None:
    staff = current_staff(app)
    if staff.role != "cs_admin":
        raise Forbidden("only the customer-service admin (cs_admin) may read message records")


@app.get("/outbox", summary="What the sandbox provider sent, newest first")
def list_outbox(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    _require_admin()
    return {"provider": hospital.sender.provider, "messages": outbox.recent(limit)}


@app.get("/messages/<message_id>", summary="One message record with its history")
def get_message(
    message_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="message id")],
) -> dict[str, Any]:
    _require_admin()
    record = records.get(message_id)
    if record is None:
        raise NotFound(f"no message {message_id}", field="path.message_id")
    return records.public_view(record)


@app.get("/messages", summary="Message records for a recipient, a complaint or a recall")
def list_messages(
    recipient_phone: Annotated[str | None, Query(max_length=20)] = None,
    recipient_email: Annotated[str | None, Query(max_length=254)] = None,
    complaint: Annotated[str | None, Query(max_length=64)] = None,
    touchpoint: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    _require_admin()
    if recipient_phone:
        try:
            phone = normalize_korean_phone(recipient_phone)
        except ValueError as error:
            raise BadRequest(
                f"query.recipient_phone: {error}", field="query.recipient_phone"
            ) from None
        return {"messages": records.for_recipient(hospital.hospital_id, phone, limit)}
    if recipient_email:
        return {"messages": records.for_recipient(hospital.hospital_id, recipient_email, limit)}
    for kind, ref in (("complaint", complaint), ("touchpoint", touchpoint)):
        if ref:
            return {"messages": records.for_ref(kind, ref, limit)}
    raise BadRequest(
        "give one of recipient_phone, recipient_email, complaint or touchpoint", field="query"
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
